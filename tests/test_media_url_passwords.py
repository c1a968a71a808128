"""A password in a media URL (http://user:pw@host/a.jpg) is used to fetch the file and shown nowhere:
not in results files, manifests, progress lines, errors, --json, plans or the Python API's results."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from tests.support.scripted_server import Status, free_port, vllm_error

PASSWORD = "hunter2pw"


class MediaServer:
    """Files over HTTP on 127.0.0.1, only with basic auth; records the Authorization headers it got."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.auth: list[str] = []

    def __enter__(self) -> "MediaServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.auth.append(self.headers.get("authorization", ""))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://bob:{PASSWORD}@127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def media_server(tmp_path):
    import io

    def image(colour) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    with MediaServer({"/a.png": image((200, 0, 0)), "/b.png": image((0, 200, 0)),
                      "/bad.jpg": b"not an image at all"}) as served:
        yield served


def no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, text


def test_a_single_ask_shows_the_url_masked_in_json_and_plans(mmcli, server, media_server):
    url = media_server.url("/a.png")
    run = mmcli("ask", url, "q", "--base-url", server.base_url, "--json")
    assert run.code == 0, run.stderr
    assert media_server.auth and all(a.startswith("Basic ") for a in media_server.auth)  # it was used to fetch
    no_password(run.output)
    assert "bob:***@127.0.0.1" in run.stdout
    for extra in ((), ("--json",)):
        plan = mmcli("ask", url, "q", "--base-url", server.base_url, "--dry-run", *extra)
        assert plan.code == 0, plan.stderr
        no_password(plan.output)
        assert "bob:***@" in plan.stdout


def test_pass_url_sends_the_url_whole_but_shows_it_masked(mmcli, server, media_server):
    url = media_server.url("/a.png")
    plan = mmcli("ask", url, "q", "--pass-url", "--base-url", server.base_url, "--dry-run", "--json")
    assert plan.code == 0, plan.stderr
    no_password(plan.output)
    run = mmcli("ask", url, "q", "--pass-url", "--base-url", server.base_url, "--json")
    assert run.code == 0, run.stderr
    no_password(run.output)
    content = server.chat_requests()[0].json["messages"][-1]["content"]
    assert content[0]["image_url"]["url"] == url  # the server needs the password to fetch it


def test_a_server_echoing_the_url_in_its_error_does_not_show_the_password(mmcli, server, media_server):
    url = media_server.url("/a.png")
    server.script(Status(400, vllm_error(400, f"cannot fetch {url}: 404")))
    run = mmcli("ask", url, "q", "--pass-url", "--base-url", server.base_url, "--no-stream")
    assert run.code == 4
    no_password(run.output)
    assert "bob:***@" in run.stderr


@pytest.mark.parametrize("path", ["/missing.png", "/bad.jpg"])
def test_errors_about_a_url_show_it_masked(mmcli, server, media_server, path):
    run = mmcli("ask", media_server.url(path), "q", "--base-url", server.base_url)
    assert run.code == 3, run.stderr
    no_password(run.output)
    assert "bob:***@" in run.stderr


def test_an_unreachable_media_url_is_masked(mmcli, server):
    run = mmcli("ask", f"http://bob:{PASSWORD}@127.0.0.1:{free_port()}/a.png", "q", "--base-url", server.base_url)
    assert run.code == 3, run.stderr
    no_password(run.output)


def test_each_results_progress_and_errors_never_hold_the_password(mmcli, server, media_server, tmp_path):
    results = tmp_path / "results.jsonl"
    urls = [media_server.url(p) for p in ("/a.png", "/b.png", "/missing.png")]
    run = mmcli("ask", "--each", *urls, "q", "-o", results, "--base-url", server.base_url)
    assert run.code == 8, run.stderr
    no_password(run.output, results.read_text())
    assert "bob:***@" in run.stderr and "bob:***@" in results.read_text()
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sum("error" in r for r in records) == 1 and len(records) == 3
    again = mmcli("ask", "--each", *urls, "q", "-o", results, "--base-url", server.base_url)
    assert "2 already done" in again.stderr  # masked lines still resume their jobs
    no_password(again.output)


def test_batch_tasks_with_urls_never_hold_the_password(mmcli, server, media_server, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"command": "ask", "inputs": [media_server.url(p)], "prompt": "q"}) + "\n"
                             for p in ("/a.png", "/bad.jpg")))
    run = mmcli("batch", tasks, "--base-url", server.base_url)
    assert run.code == 8, run.stderr
    no_password(run.output)
    assert "bob:***@" in run.stdout


def test_an_export_and_its_manifest_never_hold_the_password(mmcli, server, media_server, tmp_path):
    export = tmp_path / "requests.jsonl"
    urls = [media_server.url(p) for p in ("/a.png", "/missing.png")]
    run = mmcli("ask", "--each", *urls, "q", "--export", "openai-batch", export, "--base-url", server.base_url,
                "--model", "tiny", "--family", "qwen2-vl")
    no_password(run.output, export.read_text(), (tmp_path / "requests.manifest.json").read_text())
    assert "bob:***@" in (tmp_path / "requests.manifest.json").read_text()


def test_the_python_api_shows_the_url_masked_in_plans_and_errors(server, media_server):
    from mmcli import Client
    from mmcli.errors import MediaError

    client = Client(base_url=server.base_url)
    result = client.ask(media_server.url("/a.png"), "q")
    plan = json.dumps(result.plan.to_dict())
    no_password(plan, repr(result), *result.warnings)
    assert "bob:***@" in plan
    with pytest.raises(MediaError) as info:
        client.ask(media_server.url("/missing.png"), "q")
    no_password(str(info.value), info.value.message())


def test_a_job_id_does_not_depend_on_the_password(tmp_path):
    from dataclasses import replace

    from mmcli.batch.work import Work, job_id
    from mmcli.settings import GenerationOptions, MediaOptions

    work = Work("ask", (f"http://bob:{PASSWORD}@host/a.png",), "q", MediaOptions(), GenerationOptions())
    other = replace(work, inputs=("http://bob:another@host/a.png",))
    assert job_id(work, "qwen2-vl") == job_id(other, "qwen2-vl")  # a digest of the password is not written


def test_the_docqa_plan_shows_the_endpoint_masked(mmcli, tmp_path):
    from tests.support.pdfs import text_pdf

    pdf = text_pdf(tmp_path / "doc.pdf", 2)
    run = mmcli("docqa", pdf, "what?", "--base-url", f"http://bob:{PASSWORD}@127.0.0.1:9/v1", "-m", "m",
                "--dry-run")
    assert run.code == 0, run.stderr
    no_password(run.output)
    assert "bob:***@127.0.0.1:9" in run.stdout


def test_the_history_never_keeps_the_password(mmcli, server, media_server, clean_env):
    from pathlib import Path

    assert mmcli("ask", media_server.url("/a.png"), "q", "--pass-url", "--base-url", server.base_url).code == 0
    assert mmcli("ask", media_server.url("/b.png"), "q", "--base-url", server.base_url).code == 0
    assert server.chat_requests()[0].json["messages"][-1]["content"][0]["image_url"]["url"].endswith("/a.png")
    for args in (("logs", "--json"), ("logs", "show", "1", "--json"), ("logs", "export")):
        run = mmcli(*args)
        assert run.code == 0, run.stderr
        no_password(run.output)
    state = Path(clean_env["XDG_STATE_HOME"]) / "mmcli"
    assert (state / "history.db").is_file()
    for path in state.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert "bob:***@" in mmcli("logs", "show", "1", "--json").stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_answers_table_shows_the_url_masked(mmcli, server, media_server, fmt):
    from tests.support.scripted_server import Reply

    server.default = Reply('{"a": "x"}')
    urls = [media_server.url(p) for p in ("/a.png", "/missing.png")]
    run = mmcli("ask", "--each", *urls, "caption", "--schema", "a", "--format", fmt, "--base-url", server.base_url)
    assert run.code == 8, run.stderr
    no_password(run.output)
    lines = run.stdout.splitlines()
    rows = lines[1:] if fmt == "csv" else [json.loads(line)["source"] for line in lines]
    assert len(rows) == 2 and all(row.startswith("http://bob:***@127.0.0.1") for row in rows), rows  # failed too


def test_a_detect_dataset_holds_the_url_inputs_masked(mmcli, server, media_server, tmp_path):
    from tests.support.scripted_server import Reply

    server.default = Reply('[{"bbox_2d": [10, 10, 50, 40], "label": "dog"}]')
    out = tmp_path / "out"
    run = mmcli("detect", "--each", media_server.url("/a.png"), media_server.url("/b.png"), "dogs",
                "--format", "coco", "-o", out, "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    coco = (out / "coco.json").read_text()
    no_password(run.output, coco, (out / "results.jsonl").read_text())
    names = [image["file_name"] for image in json.loads(coco)["images"]]
    assert len(names) == 2 and all("bob:***@127.0.0.1" in name for name in names), names
