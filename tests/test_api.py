"""The Python API in-process against the scripted endpoint: inputs of every kind, plans, batches, boxes, streams."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmcli
from tests.conftest import SECRET_KEY
from tests.support import media, pdfs
from tests.support.scripted_server import CutStream, Reply, Status, decode_images, free_port, vllm_error

HEAVY = ("typer", "rich", "openai", "PIL", "cv2", "numpy", "click", "httpx", "httpx2")


pytestmark = pytest.mark.usefixtures("clean_environ")


@pytest.fixture
def client(server):
    return mmcli.Client(base_url=server.base_url)


@pytest.fixture
def photo(tmp_path):
    return media.make_small_png(tmp_path)


def _startup(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    return time.perf_counter() - started


def test_import_is_light():
    code = f"import json, sys, mmcli; print(json.dumps([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert json.loads(out.stdout) == []
    bare = min(_startup("pass") for _ in range(3))
    with_mmcli = min(_startup("import mmcli") for _ in range(3))
    print(f"import mmcli: {1000 * (with_mmcli - bare):.1f} ms over python -c pass")


def test_exports_resolve_lazily():
    assert mmcli.UsageError.__mro__[1] is mmcli.MmcliError
    assert mmcli.Client.__module__ == "mmcli.api.client" and "Client" in dir(mmcli)
    with pytest.raises(AttributeError):
        mmcli.NoSuchThing  # noqa: B018


def _inputs(photo: Path) -> dict:
    picture = Image.open(photo).convert("RGB")
    return {"path": photo, "str path": str(photo), "bytes": photo.read_bytes(), "PIL image": picture,
            "numpy array": np.asarray(picture)}


@pytest.mark.parametrize("kind", ["path", "str path", "bytes", "PIL image", "numpy array"])
def test_ask_takes_every_kind_of_input(client, server, photo, kind):
    server.script(Reply("A small picture.", usage={"prompt_tokens": 500, "completion_tokens": 3,
                                                    "total_tokens": 503}))
    answer = client.ask(_inputs(photo)[kind], "what is here?", max_tokens=20, temperature=0)
    assert isinstance(answer, mmcli.Answer)
    assert answer.text == "A small picture." and str(answer) == answer.text
    assert answer.finish_reason == "stop" and answer.usage["prompt_tokens"] == 500
    assert answer.model == "qwen2.5-vl-test" and answer.warnings == []
    assert answer.verified is True and answer.plan.totals()["visual_tokens"] > 0
    body = server.chat_requests()[0].json
    assert body["max_tokens"] == 20 and body["temperature"] == 0
    [sent] = decode_images(body)
    assert sent.width % 28 == 0 and sent.height % 28 == 0
    assert (sent.width, sent.height) == (answer.plan.items[0].sent_width, answer.plan.items[0].sent_height)


def test_a_bad_array_is_a_usage_error(client, server):
    with pytest.raises(mmcli.UsageError) as caught:
        client.ask(np.zeros((4, 4, 3), dtype=np.float32), "what?")
    assert caught.value.exit_code == 2 and "RGB uint8" in caught.value.hint
    assert server.requests == []


def test_plan_needs_no_server(photo, tmp_path):
    client = mmcli.Client(base_url=f"http://127.0.0.1:{free_port()}/v1", model="qwen2.5-vl-7b")
    plan = client.plan([photo, photo], "compare", max_pixels=200_000)
    assert isinstance(plan, mmcli.Plan) and len(plan.items) == 2
    assert plan.family == "qwen2.5-vl" and plan.request["model"] == "qwen2.5-vl-7b"
    assert all(item.sent_width * item.sent_height <= 200_000 for item in plan.items)
    if shutil.which("pdftoppm"):
        doc = pdfs.text_pdf(tmp_path / "doc.pdf", 5)
        plans = client.plan(doc, "what?", task="docqa", pages_per_request=2)
        assert [len(p.items) for p in plans] == [2, 2, 1]
        assert len(client.plan([photo, doc], "dogs", task="detect")) == 6


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
def test_docqa_batches_then_merges(client, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 5)
    server.script(Reply("Layers: 6 (p. 2)."), Reply("Nothing relevant on these pages."),
                  Reply("Heads: 8 (p. 5)."), Reply("6 layers (p. 2) and 8 heads (p. 5)."))
    answer = client.docqa(doc, "how big is the model?", pages_per_request=2)
    assert isinstance(answer, mmcli.DocAnswer)
    assert answer.text == "6 layers (p. 2) and 8 heads (p. 5)."
    assert answer.pages == [1, 2, 3, 4, 5]
    assert [b["pages"] for b in answer.batches] == [[1, 2], [3, 4], [5]]
    assert answer.batches[0]["answer"] == "Layers: 6 (p. 2)."
    requests = server.chat_requests()
    assert len(requests) == 4
    merge = requests[-1].json["messages"][-1]["content"]
    merge = merge if isinstance(merge, str) else merge[-1]["text"]
    assert "Layers: 6 (p. 2)." in merge and "Heads: 8 (p. 5)." in merge and "Nothing relevant" not in merge
    merge_tokens = 10 + len(answer.text.split())  # the scripted server's usage for the merge's reply
    assert answer.usage["total_tokens"] == sum(b["usage"]["total_tokens"] for b in answer.batches) + merge_tokens
    assert [item.details["cited_as"] for item in answer.plan.items] == [1, 2, 3, 4, 5]


def test_detect_maps_boxes_to_the_original_pixels(client, server, tmp_path):
    scene = tmp_path / "scene.png"
    Image.new("RGB", (2240, 1680), (120, 130, 140)).save(scene)
    server.script(Reply('[{"bbox_2d": [100, 50, 300, 250], "label": "dog"}, {"bbox_2d": [0, 0, 10, 10]}]'))
    found = client.detect(scene, "every dog", max_pixels=940800)
    assert isinstance(found, mmcli.Detections)
    [sent] = decode_images(server.chat_requests()[0].json)
    assert sent.size == (1120, 840)  # exactly half: boxes come back doubled
    assert [d.bbox for d in found.items] == [(200, 100, 600, 500), (0, 0, 20, 20)]
    assert found.items[0].label == "dog" and found.items[0].point is None
    coco = found.to_coco()
    assert coco["images"][0]["width"] == 2240 and len(coco["annotations"]) == 2
    assert coco["annotations"][0]["bbox"] == [200, 100, 400, 400]
    drawn = found.draw(tmp_path / "boxes.png")
    assert Image.open(drawn).size == (2240, 1680)
    with pytest.raises(mmcli.MmcliError):
        found.draw(tmp_path / "boxes.png")  # never over an existing file without force=True


def test_detect_strict_keeps_what_was_found(client, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    server.script(Reply("I see no dogs."))
    with pytest.raises(mmcli.OutputUnparseable) as caught:
        client.detect(photo, "dogs", strict=True)
    assert caught.value.exit_code == 7 and caught.value.partial.items == []
    assert caught.value.partial.inputs[0].raw == "I see no dogs."


def test_ask_stream_yields_pieces_then_the_answer(client, server, photo):
    server.script(Reply("one two three four", chunk_delay=0.01))
    stream = client.ask_stream(photo, "count")
    pieces = list(stream)
    assert len(pieces) == 4 and "".join(pieces) == "one two three four"
    assert stream.answer.text == "one two three four" == stream.text
    assert server.chat_requests()[0].json["stream"] is True


def test_a_cut_stream_raises_with_the_text_so_far(client, server, photo):
    server.script(CutStream("never finished sentence here", after_chunks=2))
    stream = client.ask_stream(photo, "tell me")
    seen = []
    with pytest.raises(mmcli.EndpointUnavailable) as caught:
        for piece in stream:
            seen.append(piece)
    assert caught.value.exit_code == 5 and caught.value.hint
    assert type(caught.value) is mmcli.EndpointUnavailable  # the Runner keeps the real error, not a wrapper
    assert caught.value.partial.text == "".join(seen) and seen


def test_errors_carry_exit_code_and_hint(client, server, photo, tmp_path):
    server.script(Status(400, vllm_error(400, "max_tokens is too large")))
    with pytest.raises(mmcli.RequestRejected) as rejected:
        client.ask(photo, "what?")
    assert rejected.value.exit_code == 4 and "too large" in rejected.value.message()
    text = tmp_path / "notes.jpg"
    text.write_text("just words, not a picture\n")
    with pytest.raises(mmcli.MediaError) as bad:
        client.ask(text, "what?")
    assert bad.value.exit_code == 3 and bad.value.hint and len(server.chat_requests()) == 1
    down = mmcli.Client(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", family="generic", timeout=5)
    with pytest.raises(mmcli.EndpointUnavailable) as unreachable:
        down.ask([], "hello?")
    assert unreachable.value.exit_code == 5 and unreachable.value.hint


def test_unknown_and_bad_keywords_are_usage_errors(client, server, photo):
    with pytest.raises(mmcli.UsageError) as unknown:
        client.ask(photo, "what?", max_pixel=100, colour="red")
    assert "max_pixel, colour" in unknown.value.message() and unknown.value.exit_code == 2
    with pytest.raises(mmcli.UsageError) as elsewhere:
        client.detect(photo, "dogs", draw=True)
    assert "Detections.draw" in elsewhere.value.hint
    with pytest.raises(mmcli.UsageError, match="max_tokens"):
        client.ask(photo, "what?", max_tokens=0)
    with pytest.raises(mmcli.UsageError, match="invalid video options"):
        client.video(photo, frames=8, fps=2)
    with pytest.raises(mmcli.UsageError):
        mmcli.Client(profile="nope")
    assert server.requests == []


def test_settings_follow_the_cli_precedence(server, photo, monkeypatch):
    monkeypatch.setenv("MMCLI_BASE_URL", server.base_url)
    monkeypatch.setenv("MMCLI_MODEL", "from-env")
    monkeypatch.setenv("MMCLI_API_KEY", SECRET_KEY)
    server.script(Reply("a"), Reply("b"))
    mmcli.Client(family="generic").ask(photo, "q")
    mmcli.Client(model="from-keyword", family="generic").ask(photo, "q")
    first, second = server.chat_requests()
    assert first.json["model"] == "from-env" and second.json["model"] == "from-keyword"
    assert first.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert SECRET_KEY not in repr(mmcli.Client())


def test_warnings_are_kept_not_printed(client, server, photo, capsys):
    server.script(Reply("cut sho", finish_reason="length"))
    answer = client.ask(photo, "what?", max_tokens=2)
    assert answer.finish_reason == "length" and "token limit (2)" in answer.warnings[0]
    assert capsys.readouterr() == ("", "")


def test_text_only_bytes_and_data_url_inputs(client, server):
    server.script(Reply("4"))
    assert client.ask([], "what is 2+2?").text == "4"
    assert server.chat_requests()[0].json["messages"][-1]["content"] == "what is 2+2?"
    with pytest.raises(mmcli.UsageError, match="empty"):
        client.ask([], "  ")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="JPEG")
    data_url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    server.script(Reply("red"), Reply("red too"))
    assert client.ask([buffer.getvalue()], "colour?").text == "red"
    assert client.ask(data_url, "colour?").text == "red too"
    assert [len(decode_images(r.json)) for r in server.chat_requests()[1:]] == [1, 1]


def test_video_with_start_end_and_a_frame_count(client, server, tmp_path):
    from tests.test_video_fixtures import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=100, fps=25)
    server.script(Reply("a red square moves"))
    answer = client.video(clip, start="0:01", end=3.5, frames=6)
    times = answer.plan.items[0].details["timestamps"]
    assert len(times) == 6 and times[0] == pytest.approx(1.0) and times[-1] == pytest.approx(3.48)
    prompt = server.chat_requests()[0].json["messages"][-1]["content"][-1]["text"]
    assert prompt == "Describe this video in detail." and answer.text == "a red square moves"
    with pytest.raises(mmcli.MediaError):
        client.video(media.make_small_png(tmp_path))  # an image is not a video


def test_client_transcribe_and_embed_give_what_the_commands_give(mmcli, tmp_path, monkeypatch):
    import mmcli as api
    from tests.support import sound
    from tests.support.embed_server import EmbeddingServer
    from tests.support.transcription_server import TranscriptionServer

    memo = sound.write_audio(tmp_path / "memo.flac", sound.chirp(3.0, 16000), 16000, "flac")
    with TranscriptionServer() as whisper:
        [transcript] = api.Client(base_url=whisper.base_url).transcribe(memo, language="en")
        assert transcript.text == "piece 1 lasts 3.00 seconds." and transcript.complete
        whisper.fail_from = 3  # the second file of the next call fails
        with pytest.raises(api.MmcliError) as failed:
            api.Client(base_url=whisper.base_url).transcribe([memo, memo])
        finished, stopped = failed.value.partial
        assert finished.text == "piece 2 lasts 3.00 seconds." and stopped.complete is False and not stopped.text

    photo = tmp_path / "red.png"
    Image.new("RGB", (300, 200), (220, 10, 10)).save(photo)
    with EmbeddingServer(models=["emb-model"]) as server:
        records = api.Client(base_url=server.base_url).embed(photo, texts="a red square")
        run = mmcli("embed", photo, "--text", "a red square", "--base-url", server.base_url)
        assert run.code == 0, run.stderr
        lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["image", "text"]
    assert [r["embedding"] for r in records] == [line["embedding"] for line in lines]
