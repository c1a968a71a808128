"""Every keyword of every public Client method goes through the one table of api/keywords.py: a wrong type or
value is one mmcli.UsageError naming it (never a TypeError, AttributeError or ValueError), raised before
anything is read or sent; and the values the table takes work."""

from __future__ import annotations

import inspect
import json

import pytest
from PIL import Image

import mmcli
from mmcli.api.keywords import METHODS
from tests.support import sound
from tests.support.embed_server import EmbeddingServer
from tests.support.scripted_server import Reply
from tests.support.pdfs import text_pdf
from tests.support.transcription_server import TranscriptionServer

pytestmark = pytest.mark.usefixtures("clean_environ")

# Parameters that are a call's media or question, checked as the commands' arguments are (not keywords).
ARGUMENTS = {"inputs", "source", "files", "tasks", "image", "prompt_or_question"}
QUESTIONS = {("video", "prompt"), ("each", "prompt"), ("plan", "prompt")}
WRONG = [object(), float("nan"), b"\xff", [object()], -10**5000, [-10**5000]]  # wrong for every keyword there is
# (-10**5000: past the digits Python turns into text, so an error that shows the value whole would raise ValueError)


def _keywords(method: str) -> list[str]:
    """The method's keywords: those of its signature, and those its **options take (its row of the table)."""
    function = mmcli.Client.__init__ if method == "client" else getattr(mmcli.Client, method)
    named = [p.name for p in inspect.signature(function).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty
             and p.name not in ARGUMENTS and (method, p.name) not in QUESTIONS]
    missing = [name for name in named if name not in METHODS[method]]
    assert not missing, f"{method} takes {missing} without the keyword table checking them"
    return sorted(set(named) | set(METHODS[method]))


PUBLIC = sorted(name for name, _ in inspect.getmembers(mmcli.Client, inspect.isfunction)
                if not name.startswith("_") and name != "openai") + ["client"]
CASES = [(method, name) for method in PUBLIC for name in _keywords(method)]


def test_every_public_method_has_a_row_in_the_table():
    assert set(PUBLIC) <= set(METHODS)
    assert all(_keywords(method) for method in PUBLIC)  # each takes some keywords, every one in the table


def _call(method: str, server, tmp_path, **keywords):
    if method == "client":
        return mmcli.Client(**{"base_url": server.base_url, "model": "tiny", "family": "qwen2-vl", **keywords})
    client = mmcli.Client(base_url=server.base_url, model="tiny", family="qwen2-vl", log=False)
    photo = str(tmp_path / "p.png")
    calls = {
        "ask": lambda: client.ask([photo], "hi", **keywords),
        "ask_stream": lambda: client.ask_stream([photo], "hi", **keywords),
        "video": lambda: client.video(str(tmp_path / "clip.mp4"), "what happens?", **keywords),
        "docqa": lambda: client.docqa([photo], "what?", **keywords),
        "detect": lambda: client.detect([photo], "a square", **keywords),
        "transcribe": lambda: client.transcribe(str(tmp_path / "memo.wav"), **keywords),
        "embed": lambda: client.embed(photo, **keywords),
        "search": lambda: client.search(**{"query": "a red car", "index": str(tmp_path), **keywords}),
        "each": lambda: client.each([photo], "caption", **keywords),
        "batch": lambda: client.batch([{"command": "ask", "inputs": [photo], "prompt": "hi"}], **keywords),
        "plan": lambda: client.plan([photo], "hi", **keywords),
        "conversation": lambda: client.conversation(**keywords),
    }
    return calls[method]()


@pytest.mark.parametrize("method, name", CASES)
def test_a_wrong_keyword_value_is_a_usage_error_and_nothing_is_sent(server, tmp_path, method, name):
    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "p.png")
    for wrong in WRONG:
        with pytest.raises(mmcli.UsageError) as refused:
            _call(method, server, tmp_path, **{name: wrong})
        assert name in refused.value.message() and refused.value.hint, (wrong, refused.value.message())
    assert not server.requests


@pytest.mark.parametrize("method", PUBLIC)
def test_an_unknown_keyword_is_a_usage_error_naming_it(server, tmp_path, method):
    with pytest.raises(mmcli.UsageError) as refused:
        _call(method, server, tmp_path, bogus=1)
    assert "bogus" in refused.value.message()
    assert not server.requests


@pytest.mark.parametrize("method, keywords, fragment", [
    ("transcribe", {"max_upload_mb": "10"}, "max_upload_mb"),
    ("transcribe", {"max_upload_mb": 0}, "max_upload_mb"),
    ("transcribe", {"start": float("nan")}, "start"),
    ("transcribe", {"start": "1:75"}, "start"),
    ("transcribe", {"end": -3}, "end"),
    ("transcribe", {"language": 5}, "language"),
    ("transcribe", {"prompt": ["names"]}, "prompt"),
    ("embed", {"pages": "  "}, "pages"),
    ("embed", {"texts": ["ok", ""]}, "texts"),
    ("embed", {"batch_size": 0}, "batch_size"),
    ("search", {"query": 5}, "query"),
    ("search", {"top_k": 2.5}, "top_k"),
    ("search", {"index": None}, "index"),
    ("ask", {"temperature": float("inf")}, "temperature"),
    ("video", {"fps": float("inf")}, "fps"),
    ("each", {"task": "summarise"}, "task"),
    ("plan", {"task": "embed"}, "task"),
])
def test_the_values_found_wrong_are_usage_errors(server, tmp_path, method, keywords, fragment):
    with pytest.raises(mmcli.UsageError) as refused:
        _call(method, server, tmp_path, **keywords)
    assert fragment in refused.value.message() + refused.value.hint
    assert not server.requests


def test_task_none_is_the_default_task_as_none_is_for_every_keyword(server, tmp_path):
    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "p.png")
    client = mmcli.Client(base_url=server.base_url, model="tiny", family="qwen2-vl", log=False)
    plan = client.plan(str(tmp_path / "p.png"), "hi", task=None)
    assert plan.request["messages"][-1]["content"][-1]["text"] == "hi" and not server.requests
    server.default = Reply("a square")
    [line] = client.each([str(tmp_path / "p.png")], "caption", task=None)
    assert line["command"] == "ask" and line["answer"] == "a square"


def test_transcribe_without_files_is_a_usage_error(server):
    client = mmcli.Client(base_url=server.base_url, log=False)
    for nothing in (None, []):
        with pytest.raises(mmcli.UsageError, match="nothing to transcribe"):
            client.transcribe(nothing)
    assert not server.requests


def test_transcribe_takes_times_as_the_commands_do(tmp_path):
    memo = sound.write_audio(tmp_path / "memo.wav", sound.chirp(4.0, 16000), 16000, "wav")
    with TranscriptionServer() as whisper:
        client = mmcli.Client(base_url=whisper.base_url, log=False)
        [cut] = client.transcribe(memo, start="0:01", end=3, max_upload_mb=10, language="en", prompt="a chirp")
        [whole] = client.transcribe(memo)
        assert len(whisper.uploads) == 2
        fields = whisper.uploads[0].fields
    assert "2.00 seconds" in cut.text and "4.00 seconds" in whole.text  # one second in, two seconds long
    assert fields["language"] == "en" and fields["prompt"] == "a chirp"


@pytest.mark.parametrize("pages, count", [([1, 3], 2), (2, 1), ("2-3", 2), (range(1, 4), 3)])
def test_embed_takes_pages_as_docqa_does(tmp_path, pages, count):
    pdf = text_pdf(tmp_path / "doc.pdf", 3)
    with EmbeddingServer(models=["emb-model"]) as server:
        records = mmcli.Client(base_url=server.base_url, log=False).embed(pdf, pages=pages)
    assert [r["kind"] for r in records] == ["page"] * count
    assert json.dumps([r["page"] for r in records])  # the pages named, plain numbers
