"""End to end: `mmcli docqa` against the real vLLM server, which takes at most 4 images per prompt.

A small recording proxy sits between mmcli and vLLM so the test sees every request as sent.
The weights are random, so answers are noise; what is checked is the batch path: several
requests, none over the server's image limit, a text-only merge, exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tier_server

pytest.importorskip("mmcli")
from tests.support import pdfs  # noqa: E402  (after the skip: the repo root is on sys.path)
from tests.support.scripted_server import LocalServer, QuietHandler  # noqa: E402

IMAGE_LIMIT = tier_server.IMAGE_LIMIT


class _ProxyHandler(QuietHandler):
    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        body = self._read_body()
        self.server.owner.bodies.append(json.loads(body))
        self._forward(body)

    def _forward(self, body) -> None:
        request = urllib.request.Request(self.server.owner.upstream + self.path, data=body, method=self.command,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, data, kind = response.status, response.read(), response.headers.get("Content-Type")
        except urllib.error.HTTPError as exc:
            status, data, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
        self._send(status, data, kind or "application/json")


class RecordingProxy(LocalServer):
    """Forwards every request to `upstream` and keeps the JSON bodies of the POSTs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.bodies: list[dict] = []
        self._serve(_ProxyHandler, "recording-proxy")


@pytest.fixture
def proxy(vllm_server):
    recorder = RecordingProxy(vllm_server.root_url)
    yield recorder
    recorder.close()


def docqa(base_url: str, model: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    return subprocess.run([sys.executable, "-m", "mmcli", "docqa", *args, "--base-url", base_url,
                           "--model", model, "--max-tokens", "3", "--temperature", "0",
                           "--max-tokens-per-image", "64"],
                          capture_output=True, timeout=600, env=env, check=False)


def images_in(body: dict) -> int:
    content = body["messages"][-1]["content"]
    return 0 if isinstance(content, str) else sum(p["type"] == "image_url" for p in content)


def test_six_pages_go_through_the_batch_path(vllm_server, proxy, tmp_path: Path):
    doc = pdfs.text_pdf(tmp_path / "six.pdf", 6)
    proc = docqa(proxy.base_url, vllm_server.model, str(doc), "What does each page say?", "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result = json.loads(proc.stdout)
    chats = [b for b in proxy.bodies if "messages" in b]
    counts = [images_in(b) for b in chats]
    assert len(chats) >= 3 and max(counts) <= IMAGE_LIMIT, counts
    assert counts == [4, 2, 0]  # the local profile's 4 pages per request, then the text-only merge
    assert [b["pages"] for b in result["batches"]] == [[1, 2, 3, 4], [5, 6]]
    assert result["pages"] == [1, 2, 3, 4, 5, 6] and isinstance(result["answer"], str)
    # The server saw every planned visual token of the first batch (+2 markers per image).
    planned = sum(item["visual_tokens"] for item in result["plan"]["items"][:4])
    assert result["batches"][0]["usage"]["prompt_tokens"] > planned + 4 * 2


def test_a_batch_over_the_server_limit_is_rejected_with_a_hint(vllm_server, proxy, tmp_path: Path):
    doc = pdfs.text_pdf(tmp_path / "six.pdf", 6)
    proc = docqa(proxy.base_url, vllm_server.model, str(doc), "q", "--pages-per-request", "5")
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 4, stderr
    assert "mmcli: error:" in stderr and "--limit-mm-per-prompt" in stderr
    assert [images_in(b) for b in proxy.bodies if "messages" in b] == [5]
