"""Checks that the test support code behaves as the other tests assume."""

from __future__ import annotations

import base64
import io
import json
import socket
import stat
import struct
import threading
import time
import urllib.error
import urllib.request

import httpx2
import numpy as np
import openai
import pytest
from PIL import Image, ImageOps

from tests.support import media
from tests.support.scripted_server import (
    NGINX_413_HTML,
    CutStream,
    Drop,
    ErrorEvent,
    Hang,
    Reply,
    ScriptedServer,
    Status,
    data_url_parts,
    decode_images,
    free_port,
    vllm_error,
)

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv
    assert srv.errors == []


@pytest.fixture
def make_client():
    clients: list[openai.OpenAI] = []

    def make(srv: ScriptedServer, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("api_key", "sk-test")
        clients.append(openai.OpenAI(base_url=srv.base_url, **kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def ask(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model="qwen2.5-vl-test", messages=MESSAGES, **kwargs)


def collect(stream, sink: list[str]) -> None:
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            sink.append(chunk.choices[0].delta.content)


def png_data_url(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------- server


def test_models_and_health(server, make_client):
    server.models = ["qwen2.5-vl-test", "other"]
    assert [m.id for m in make_client(server).models.list()] == ["qwen2.5-vl-test", "other"]
    with urllib.request.urlopen(server.root_url + "/health", timeout=5) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.root_url + "/nope", timeout=5)
    info.value.close()
    assert info.value.code == 404


def test_reply_non_streaming_and_recording(server, make_client):
    server.script(Reply("a cat on a mat", usage={"prompt_tokens": 1224, "completion_tokens": 5,
                                                  "total_tokens": 1229}))
    response = make_client(server).chat.completions.create(model="m-echo", messages=MESSAGES)
    assert response.choices[0].message.content == "a cat on a mat"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "m-echo"
    assert response.usage.prompt_tokens == 1224
    (request,) = server.chat_requests()
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json["messages"] == MESSAGES
    assert json.loads(request.body) == request.json


def test_reply_streaming_with_usage(server, make_client):
    server.script(Reply("the quick brown fox jumps", finish_reason="length"))
    chunks = list(ask(make_client(server), stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the quick brown fox jumps"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert server.chat_requests()[0].json["stream"] is True


def test_default_reply_in_both_modes(server, make_client):
    client = make_client(server)
    assert ask(client).choices[0].message.content == "ok"
    pieces: list[str] = []
    collect(ask(client, stream=True), pieces)
    assert pieces == ["ok"] and server.remaining == 0


def test_stream_chunks_arrive_one_by_one(server, make_client):
    server.script(Reply("one two three four five", chunk_delay=0.05))
    started = time.monotonic()
    arrivals = [time.monotonic() - started for _ in ask(make_client(server), stream=True)]
    assert arrivals[-1] - arrivals[1] > 0.15


def test_cut_stream_raises_connection_error_after_partial_text(server, make_client):
    server.script(CutStream("one two three four five six", after_chunks=3))
    pieces: list[str] = []
    with pytest.raises(openai.APIConnectionError) as info:
        collect(ask(make_client(server), stream=True), pieces)
    assert pieces == ["one ", "two ", "three "]
    assert not isinstance(info.value, openai.APITimeoutError)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


def test_error_event_raises_api_error(server, make_client):
    server.script(ErrorEvent("partial answer", "CUDA out of memory"))
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as info:
        collect(ask(make_client(server), stream=True), pieces)
    assert type(info.value) is openai.APIError
    assert info.value.message == "CUDA out of memory" and info.value.body["code"] == 500
    assert pieces == ["partial ", "answer"]


def test_drop_raises_connection_error_and_is_retried(server, make_client):
    server.script(Drop())
    with pytest.raises(openai.APIConnectionError) as info:
        ask(make_client(server))
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    server.script(Drop(), Reply("second try"))
    assert ask(make_client(server, max_retries=1)).choices[0].message.content == "second try"
    assert len(server.chat_requests()) == 3


def test_hang_causes_client_timeout(server, make_client):
    server.script(Hang(30), Hang(30))
    with pytest.raises(openai.APITimeoutError) as info:
        ask(make_client(server, timeout=0.3))
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)
    with pytest.raises(openai.APITimeoutError):
        collect(ask(make_client(server, timeout=0.3), stream=True), [])


def test_close_wakes_hanging_handler(make_client):
    srv = ScriptedServer().script(Hang(30))
    errors: list[Exception] = []

    def call() -> None:
        try:
            ask(make_client(srv, timeout=20))
        except openai.APIError as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    while not srv.chat_requests():
        time.sleep(0.01)
    started = time.monotonic()
    srv.close()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2 and not worker.is_alive()
    assert isinstance(errors[0], openai.APIConnectionError)


def test_rate_limit_then_success_is_retried(server, make_client):
    server.script(Status(429, vllm_error(429, "slow down"), headers={"Retry-After": "1"}),
                  Reply("after retry"))
    started = time.monotonic()
    response = ask(make_client(server, max_retries=2))
    assert response.choices[0].message.content == "after retry"
    assert time.monotonic() - started >= 0.9
    assert len(server.chat_requests()) == 2


def test_default_action_applies_to_every_retry(make_client):
    with ScriptedServer(default=Status(503, headers={"Retry-After-Ms": "10"})) as srv:
        with pytest.raises(openai.InternalServerError) as info:
            ask(make_client(srv, max_retries=2))
        assert info.value.status_code == 503 and len(srv.chat_requests()) == 3


@pytest.mark.parametrize("action, error_class", [
    (Status(400, vllm_error(400, "At most 4 image(s) may be provided in one prompt.")),
     openai.BadRequestError),
    (Status(401), openai.AuthenticationError),
    (Status(404, vllm_error(404, "The model `nope` does not exist.")), openai.NotFoundError),
    (Status(413, NGINX_413_HTML, content_type="text/html"), openai.APIStatusError),
    (Status(500, vllm_error(500, "boom")), openai.InternalServerError),
])
def test_status_errors_map_to_sdk_classes(server, action, error_class, make_client):
    server.script(action)
    with pytest.raises(error_class) as info:
        ask(make_client(server))
    assert info.value.status_code == action.code
    if action.code == 400:
        assert "At most 4 image(s)" in str(info.value)
        assert info.value.body["type"] == "BadRequestError"
    if action.code == 413:
        assert "413 Request Entity Too Large" in info.value.response.text


def test_handler_errors_are_kept_for_inspection(make_client):
    with ScriptedServer().script("not an action") as srv:
        with pytest.raises(openai.APIConnectionError):
            ask(make_client(srv))
    assert [type(error) for error in srv.errors] == [TypeError]


def test_api_key_is_enforced_when_set(make_client):
    with ScriptedServer(api_key="right") as srv:
        with pytest.raises(openai.AuthenticationError):
            make_client(srv).models.list()
        assert ask(make_client(srv, api_key="right")).choices[0].message.content == "ok"


def test_free_port_refuses_connections():
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    with client, pytest.raises(openai.APIConnectionError) as info:
        ask(client)
    assert isinstance(info.value.__cause__, httpx2.ConnectError)


def test_image_parts_are_decoded(server, make_client):
    content = [{"type": "text", "text": "what changed?"},
               {"type": "image_url", "image_url": {"url": png_data_url((56, 28))}},
               {"type": "image_url", "image_url": {"url": png_data_url((28, 84))}},
               {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}]
    make_client(server).chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}])
    (request,) = server.chat_requests()
    assert [image.size for image in decode_images(request.json)] == [(56, 28), (28, 84)]
    parts = data_url_parts(request)
    assert [mime for mime, _ in parts] == ["image/png", "image/png", "video/mp4"]
    assert parts[0][1].startswith(b"\x89PNG") and parts[2][1] == b"\x00\x00\x00"


# ---------------------------------------------------------------- media


def test_real_photo_is_a_12mp_jpeg(tmp_path):
    path = media.make_real_photo(tmp_path)
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (4032, 3024))
        pixels = np.asarray(image.reduce(16))
    assert pixels.std() > 30  # real picture content, not a flat fill
    assert path.stat().st_size > 500_000
    small = media.make_real_photo(tmp_path, "cat.jpg", which="chelsea", size=(600, 400))
    with Image.open(small) as image:
        assert image.size == (600, 400)


def test_exif_rotated_portrait(tmp_path):
    with Image.open(media.make_exif_rotated_portrait(tmp_path)) as image:
        assert image.size == (4032, 3024)
        assert image.getexif()[0x0112] == 6
        assert ImageOps.exif_transpose(image).size == (3024, 4032)


def test_rgba_png_has_transparent_half(tmp_path):
    with Image.open(media.make_rgba_png(tmp_path)) as image:
        assert image.mode == "RGBA"
        width, height = image.size
        assert image.getpixel((0, 0)) == (255, 0, 0, 255)
        assert image.getpixel((width - 1, height - 1))[3] == 0
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, image).convert("RGB")
        assert flat.getpixel((width - 1, 0)) == (255, 255, 255)


def test_palette_png_uses_transparent_index(tmp_path):
    with Image.open(media.make_palette_png_transparent(tmp_path)) as image:
        assert image.mode == "P" and image.info["transparency"] == 0
        assert (np.asarray(image) == 0).any() and image.convert("RGBA").getpixel((0, 0))[3] == 0


def test_png_16bit_gradient(tmp_path):
    with Image.open(media.make_png_16bit(tmp_path)) as image:
        assert image.mode in ("I;16", "I")
        assert image.getextrema() == (0, 65535)


def test_cmyk_jpeg(tmp_path):
    with Image.open(media.make_cmyk_jpeg(tmp_path)) as image:
        assert (image.format, image.mode) == ("JPEG", "CMYK")
        assert np.asarray(image.convert("RGB")).std() > 30


def test_animated_gif_has_three_colours(tmp_path):
    with Image.open(media.make_animated_gif(tmp_path)) as image:
        colours = []
        for index in range(image.n_frames):
            image.seek(index)
            colours.append(image.convert("RGB").getpixel((0, 0)))
    assert colours == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_small_and_thin_images(tmp_path):
    with Image.open(media.make_small_png(tmp_path)) as small:
        assert small.size == (640, 480)
    with Image.open(media.make_thin_image(tmp_path)) as thin:
        assert thin.size == (1, 300)


def test_bad_files_fail_to_decode(tmp_path):
    assert media.make_zero_byte(tmp_path).stat().st_size == 0
    for path in (media.make_random_bytes_jpg(tmp_path), media.make_heic_named_png(tmp_path)):
        with pytest.raises(Image.UnidentifiedImageError):
            Image.open(path)
    with Image.open(media.make_truncated_jpeg(tmp_path)) as image:
        with pytest.raises(OSError, match="truncated"):
            image.load()


def test_png_bomb_header_claims_20000_square(tmp_path):
    path = media.make_png_bomb_header(tmp_path)
    data = path.read_bytes()
    assert len(data) < 1000 and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (20000, 20000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)


def test_heic_header_and_name(tmp_path):
    path = media.make_heic_named_png(tmp_path)
    assert path.name == "photo.png" and path.read_bytes()[4:12] == b"ftypheic"


def test_fifo_and_directory(tmp_path):
    assert stat.S_ISFIFO(media.make_fifo(tmp_path).stat().st_mode)
    assert media.make_directory(tmp_path).is_dir()
    media.make_fifo(tmp_path)  # repeatable


def test_make_all_creates_everything(tmp_path):
    paths = media.make_all(tmp_path)
    assert set(paths) == set(media.GOOD) | set(media.BAD)
    assert all(path.parent == tmp_path and (path.exists()) for path in paths.values())
