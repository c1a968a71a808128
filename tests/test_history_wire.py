"""Earlier turns on the wire: kept by SHA-256 and restored byte for byte; media uuids only for vLLM."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from mmcli.settings import EndpointFlags, Quirks, settings_from
from mmcli.media.item import MediaItem
from mmcli.core.wire import kept_message, media_parts, restored_message


def _store():
    blobs: dict[str, bytes] = {}

    def keep(data: bytes, mime: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        blobs[sha] = data
        return sha

    return blobs, keep


def test_every_payload_shape_comes_back_byte_for_byte():
    jpeg, frame2, wav = b"\xff\xd8jpeg", b"\xff\xd8two", b"RIFFwav"
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    message = {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64(jpeg)}"}, "uuid": "u1"},
        {"type": "video_url", "video_url": {"url": f"data:video/jpeg;base64,{b64(jpeg)},{b64(frame2)}"}},
        {"type": "input_audio", "input_audio": {"data": b64(wav), "format": "wav"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}},  # kept as it is
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        {"type": "text", "text": "data:text/plain;base64,looks like a payload but is the question"}]}
    blobs, keep = _store()
    kept = kept_message(message, keep)
    assert set(blobs.values()) == {jpeg, frame2, wav}  # the jpeg is stored once though sent twice
    assert b64(jpeg) not in json.dumps(kept)
    again = restored_message(json.loads(json.dumps(kept)), blobs.__getitem__)
    assert json.dumps(again, separators=(",", ":")) == json.dumps(message, separators=(",", ":"))


def test_media_uuids_are_the_sha256_of_the_bytes_and_only_where_asked():
    image = MediaItem("a.jpg", "image", "image/jpeg", data=b"\xff\xd8abc")
    frames = MediaItem("v.mp4", "video", "image/jpeg", transport="images", frames=[b"f1", b"f2"], times=[0.0, 1.0])
    assert "uuid" not in media_parts(image, Quirks())[0]
    assert media_parts(image, Quirks(media_uuid=True))[0]["uuid"] == hashlib.sha256(b"\xff\xd8abc").hexdigest()
    parts = media_parts(frames, Quirks(media_uuid=True))
    assert [p.get("uuid") for p in parts] == [None, hashlib.sha256(b"f1").hexdigest(),
                                             None, hashlib.sha256(b"f2").hexdigest()]


def test_only_vllm_endpoints_take_media_uuids(tmp_path):
    path = Path(tmp_path / "config.toml")
    local = settings_from(EndpointFlags(), {}, {}, path)
    assert local.endpoint.quirks.media_uuid
    elsewhere = settings_from(EndpointFlags(base_url="http://127.0.0.1:9/v1"), {}, {}, path)
    assert not elsewhere.endpoint.quirks.media_uuid
    flagged = settings_from(EndpointFlags(profile="mine"), {}, {"profiles": {"mine": {
        "base_url": "http://gpu.example/v1", "media_uuid": True}}}, path)
    assert flagged.endpoint.quirks.media_uuid
    assert not settings_from(EndpointFlags(profile="openai"), {}, {}, path).endpoint.quirks.media_uuid


def test_a_follow_up_to_another_endpoint_loses_the_uuids_of_earlier_turns():
    from mmcli.core.wire import without_media_uuids

    sent = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}, "uuid": "ab"},
                                        {"type": "text", "text": "q"}]}
    assert without_media_uuids(sent)["content"] == [{"type": "image_url", "image_url": {"url": "data:,"}},
                                                    {"type": "text", "text": "q"}]
    assert "uuid" in sent["content"][0]  # the kept message is not changed
    assert without_media_uuids({"role": "user", "content": "text"}) == {"role": "user", "content": "text"}
