"""`mmcli docqa` against the scripted endpoint: pages, batches and merge, citations, per-page results."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import assert_clean_error
from tests.support import media, pdfs
from tests.support.scripted_server import Reply, Status, decode_images, vllm_error

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")


def content(request) -> list[dict]:
    body = getattr(request, "json", request)  # a recorded request or a request body
    return body["messages"][-1]["content"]


def texts(request) -> list[str]:
    """The text parts of a request, images shown as 'IMAGE'."""
    parts = content(request)
    if isinstance(parts, str):
        return [parts]
    return [p["text"] if p["type"] == "text" else "IMAGE" for p in parts]


def docqa(mmcli, server, *args, env=None):
    return mmcli("docqa", *args, "--base-url", server.base_url, env=env)


@pytest.fixture
def doc10(tmp_path):
    return pdfs.text_pdf(tmp_path / "doc10.pdf", 10)


def test_one_request_labels_every_page_and_asks_for_citations(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "paper.pdf", 3)
    server.script(Reply("Six encoder layers (p. 2)."))
    run = docqa(mmcli, server, doc, "how many encoder layers?")
    assert run.code == 0, run.stderr
    assert run.stdout == "Six encoder layers (p. 2).\n"
    [request] = server.chat_requests()
    parts = texts(request)
    assert parts[:6] == ["Page 1", "IMAGE", "Page 2", "IMAGE", "Page 3", "IMAGE"]
    assert parts[6].startswith("how many encoder layers?") and "(p. N)" in parts[6]
    for image in decode_images(request.json):
        assert image.format == "JPEG" and image.width % 28 == 0 and image.height % 28 == 0
        assert (image.width // 28) * (image.height // 28) <= 1280


def test_pages_option_sends_those_pages_in_order(mmcli, server, doc10):
    server.script(Reply("ok"))
    run = docqa(mmcli, server, doc10, "q", "--pages", "7,2-3", "--json")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["pages"] == [2, 3, 7]
    assert [t for t in texts(server.chat_requests()[0]) if t.startswith("Page")] == ["Page 2", "Page 3", "Page 7"]
    assert [item["details"]["page"] for item in result["plan"]["items"]] == [2, 3, 7]


def test_long_document_is_answered_in_batches_then_merged(mmcli, server, doc10):
    server.script(Reply("Deadline: 1 May (p. 2)."), Reply("Nothing relevant on these pages."),
                  Reply("Deadline: 9 June (p. 10)."), Reply("1 May (p. 2) and 9 June (p. 10)."))
    run = docqa(mmcli, server, doc10, "list every deadline", "--pages-per-request", "4")
    assert run.code == 0, run.stderr
    assert run.stdout == "1 May (p. 2) and 9 June (p. 10).\n"
    requests = server.chat_requests()
    assert [texts(r).count("IMAGE") for r in requests] == [4, 4, 2, 0]
    assert [t for t in texts(requests[2]) if t.startswith("Page")] == ["Page 9", "Page 10"]
    assert "pages 5-8 of a longer document" in texts(requests[1])[-1]
    merge = requests[3].json["messages"][-1]["content"]
    assert isinstance(merge, str) and "list every deadline" in merge
    assert "[Pages 1-4]\nDeadline: 1 May (p. 2)." in merge and "[Pages 9-10]\nDeadline: 9 June (p. 10)." in merge
    assert "Pages 5-8" not in merge  # a batch that found nothing is left out of the merge
    assert "(p. N)" in merge
    progress = [line for line in run.stderr.splitlines() if line.startswith("mmcli: [")]
    assert progress == ["mmcli: [1/4] pages 1-4", "mmcli: [2/4] pages 5-8", "mmcli: [3/4] pages 9-10",
                        "mmcli: [4/4] merging 3 partial answers"]


def test_batches_in_json_and_the_profile_default(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 3)
    server.script(Reply("a (p. 1)", usage={"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103}),
                  Reply("b (p. 3)", usage={"prompt_tokens": 60, "completion_tokens": 3, "total_tokens": 63}),
                  Reply("a and b (p. 1, p. 3)"))
    # The xinference profile allows 2 pages per request.
    run = docqa(mmcli, server, doc, "q", "--profile", "xinference", "--json", "--no-stream")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["answer"] == "a and b (p. 1, p. 3)"
    assert [b["pages"] for b in result["batches"]] == [[1, 2], [3]]
    assert [b["answer"] for b in result["batches"]] == ["a (p. 1)", "b (p. 3)"]
    assert result["batch_usage"] == {"prompt_tokens": 160, "completion_tokens": 6, "total_tokens": 166}
    assert len(result["plan"]["items"]) == 3 and result["pages"] == [1, 2, 3]
    assert all(r.json["stream"] is False for r in server.chat_requests())


def test_a_failed_batch_prints_the_answers_already_given(mmcli, server, doc10):
    server.script(Reply("Found it (p. 3)."),
                  Status(400, vllm_error(400, "At most 4 image(s) may be provided in one prompt.")))
    run = docqa(mmcli, server, doc10, "q", "--pages-per-request", "4")
    assert_clean_error(run, 4, "rejected")
    assert "## Pages 1-4" in run.stdout and "Found it (p. 3)." in run.stdout
    assert "stopped after pages 1-4" in run.stderr and "hint:" in run.stderr
    assert len(server.chat_requests()) == 2  # no merge, no third batch


def test_a_failed_batch_in_json_keeps_the_answers(mmcli, server, doc10):
    server.script(Reply("Found it (p. 3)."), Status(500))
    server.default = Status(500)
    run = docqa(mmcli, server, doc10, "q", "--pages-per-request", "4", "--json")
    assert run.code == 5
    result = json.loads(run.stdout)
    assert result["answer"] is None and result["pages_answered"] == [1, 2, 3, 4]
    assert result["batches"][0]["answer"] == "Found it (p. 3)." and "500" in result["error"]


def test_a_failed_merge_prints_every_batch_answer(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 3)
    server.script(Reply("one (p. 1)"), Reply("two (p. 3)"), Status(400))
    run = docqa(mmcli, server, doc, "q", "--pages-per-request", "2")
    assert_clean_error(run, 4)
    assert "## Pages 1-2\n\none (p. 1)" in run.stdout and "## Pages 3\n\ntwo (p. 3)" in run.stdout


def test_per_page_json_lines(mmcli, server, doc10):
    server.script(Reply("nothing"), Reply("deadline 1 May"), Reply("nothing"))
    run = docqa(mmcli, server, doc10, "list every deadline", "--pages", "4-6", "--per-page", "--json")
    assert run.code == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["page"], line["answer"]) for line in lines] == [(4, "nothing"), (5, "deadline 1 May"),
                                                                  (6, "nothing")]
    assert all(line["source"].endswith("doc10.pdf") and line["usage"] for line in lines)
    requests = server.chat_requests()
    assert [texts(r)[:2] for r in requests] == [["Page 4", "IMAGE"], ["Page 5", "IMAGE"], ["Page 6", "IMAGE"]]
    assert "(Page 5)" in texts(requests[1])[-1]


def test_per_page_text_and_a_failure_keeps_earlier_pages(mmcli, server, doc10):
    server.script(Reply("first answer"), Status(400))
    run = docqa(mmcli, server, doc10, "q", "--pages", "1-3", "--per-page")
    assert_clean_error(run, 4)
    assert run.stdout.startswith("## Page 1\n\nfirst answer\n")
    assert "## Page 2" in run.stdout and "Page 3" not in run.stdout
    server.script(Reply("ok"), Status(400))
    run = docqa(mmcli, server, doc10, "q", "--pages", "1-3", "--per-page", "--json")
    assert run.code == 4
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[0]["answer"] == "ok" and lines[1]["page"] == 2 and "rejected" in lines[1]["error"]


def test_with_text_sends_the_text_layer_beside_each_image(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 2)
    server.script(Reply("ok"))
    run = docqa(mmcli, server, doc, "q", "--with-text")
    assert run.code == 0, run.stderr
    parts = texts(server.chat_requests()[0])
    assert parts[:2] == ["Page 1", "IMAGE"] and parts[2].startswith("Text layer of page 1:")
    assert "MARKER-1" in parts[2] and "MARKER-2" in parts[5] and "MARKER-2" not in parts[2]


def test_with_text_on_a_scan_sends_images_only(mmcli, server, tmp_path):
    doc = pdfs.scanned_pdf(tmp_path / "scan.pdf", 2)
    server.script(Reply("ok"))
    run = docqa(mmcli, server, doc, "q", "--with-text")
    assert run.code == 0, run.stderr
    assert "no text layer" in run.stderr
    assert texts(server.chat_requests()[0])[:4] == ["Page 1", "IMAGE", "Page 2", "IMAGE"]


def test_scanned_page_images_are_pages(mmcli, server, tmp_path):
    first = media.make_real_photo(tmp_path / "a")
    second = media.make_small_png(tmp_path / "b")
    server.script(Reply("Total: 42 (p. 2)."))
    run = docqa(mmcli, server, first, second, "what is the invoice total?")
    assert run.code == 0, run.stderr
    parts = texts(server.chat_requests()[0])
    assert parts[0] == f"Page 1 ({first})" and parts[2] == f"Page 2 ({second})"
    assert parts[1] == parts[3] == "IMAGE"


def test_a_pdf_and_an_image_are_numbered_in_order(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 2)
    photo = media.make_small_png(tmp_path)
    run = mmcli("docqa", doc, photo, "q", "--dry-run", "--json", "--family", "qwen2.5-vl")
    assert run.code == 0, run.stderr
    labels = [t for t in texts(json.loads(run.stdout)["requests"][0]["request"]) if t.startswith("Page")]
    assert labels == [f"Page 1 ({doc}, page 1)", f"Page 2 ({doc}, page 2)", f"Page 3 ({photo})"]


def test_dry_run_lists_every_request_and_sends_nothing(mmcli, server, doc10):
    run = docqa(mmcli, server, doc10, "q", "--pages-per-request", "4", "--dry-run", "--json")
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)
    assert server.requests == []
    assert plan["mode"] == "batches" and plan["merge"] is True
    assert [r["pages"] for r in plan["requests"]] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert plan["totals"]["requests"] == 4 and plan["totals"]["pages"] == 10
    assert plan["totals"]["visual_tokens"] == sum(i["visual_tokens"] for i in plan["items"])
    assert all(i["sent_width"] % 28 == 0 and i["kind"] == "page" for i in plan["items"])
    human = docqa(mmcli, server, doc10, "q", "--pages-per-request", "4", "--dry-run")
    assert human.code == 0 and "3 batches (pages 1-4 | 5-8 | 9-10)" in human.stdout
    assert "nothing sent" in human.stdout and server.requests == []


def test_encrypted_pdf_with_password_env(mmcli, server, tmp_path):
    doc = pdfs.encrypted_pdf(tmp_path / "locked.pdf", "pw-Zq81x")
    server.script(Reply("signed by Ann (p. 1)"))
    run = docqa(mmcli, server, doc, "who signed?", "--password-env", "DOC_PW", "--with-text",
                env={"DOC_PW": "pw-Zq81x"})
    assert run.code == 0, run.stderr
    assert run.stdout == "signed by Ann (p. 1)\n" and "pw-Zq81x" not in run.output
    assert "MARKER-1" in texts(server.chat_requests()[0])[2]


def test_progress_is_a_bar_on_a_terminal_and_status_lines_otherwise():
    import io

    from mmcli.cli.output.render import Output, Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    with Progress(Output(stdout=io.StringIO(), stderr=terminal), 3, "reading pages") as progress:
        progress.begin("pages 1-4")
        progress.advance()
    assert "━" in terminal.getvalue() and "pages 1-4" in terminal.getvalue() and "1/3" in terminal.getvalue()
    piped = io.StringIO()
    with Progress(Output(stdout=io.StringIO(), stderr=piped), 2, "reading pages") as progress:
        progress.begin("pages 1-4")
        progress.advance()
        progress.begin("merging 1 partial answers")
    assert piped.getvalue() == "mmcli: [1/2] pages 1-4\nmmcli: [2/2] merging 1 partial answers\n"


def test_ctrl_c_during_a_batch_keeps_the_answers_already_given(server, clean_env, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.support.scripted_server import Hang

    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 4)
    server.script(Reply("first part (p. 1)"), Hang(30))
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "docqa", str(doc), "q", "--pages-per-request", "2",
                             "--base-url", server.base_url, "-m", "qwen2.5-vl-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env,
                            cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + 30
    while len(server.chat_requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.chat_requests()) == 2, "the second batch was never sent"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "## Pages 1-2\n\nfirst part (p. 1)" in stdout.decode()
    assert "Traceback" not in stderr.decode()
