"""End to end: the mmcli command line against the real vLLM server of the tier.

mmcli runs as a subprocess (``python -m mmcli``), exactly as a user runs it.
The weights are random, so answers are noise; what is checked is the contract:
exit codes, JSON shapes, and that the server counts exactly the visual tokens
mmcli planned (+2 for the vision start/end markers).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import tier_media

pytest.importorskip("mmcli")

FACTOR = 28
PROMPT = "Describe this."
PLAN_ITEM_KEYS = {"source", "kind", "mime", "original_width", "original_height", "sent_width",
                  "sent_height", "visual_tokens", "bytes"}


def run_mmcli(*args: str, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m mmcli ARGS`` with no endpoint variables and an empty config home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    with tempfile.TemporaryDirectory(prefix="mmcli-home-") as home:
        env.update(HOME=home, XDG_CONFIG_HOME=str(Path(home) / "config"), COLUMNS="200")
        return subprocess.run([sys.executable, "-m", "mmcli", *args], input=stdin,
                              capture_output=True, timeout=timeout, env=env, check=False)


def ask(server, *inputs: str, prompt: str = PROMPT, max_tokens: int = 2, extra: tuple = (),
        stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """``mmcli ask INPUTS PROMPT`` against the tier server, greedy and short."""
    return run_mmcli("ask", *inputs, prompt, "--base-url", server.base_url, "--model",
                     server.model, "--max-tokens", str(max_tokens), "--temperature", "0",
                     *extra, stdin=stdin)


def ask_json(server, *inputs: str, **kwargs) -> dict:
    """``mmcli ask ... --json``; asserts success and returns the parsed object."""
    proc = ask(server, *inputs, extra=("--json", *kwargs.pop("extra", ())), **kwargs)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


def text(proc: subprocess.CompletedProcess) -> str:
    """The stderr of a finished mmcli, decoded."""
    return proc.stderr.decode(errors="replace")


def check_plan_item(item: dict) -> None:
    """An image plan item is complete and its token count matches its sent size."""
    assert PLAN_ITEM_KEYS <= item.keys()
    assert item["kind"] == "image"
    assert item["sent_width"] % FACTOR == 0 and item["sent_height"] % FACTOR == 0
    assert item["visual_tokens"] == (item["sent_width"] // FACTOR) * (item["sent_height"] // FACTOR)
    assert item["bytes"] > 0


class ConnectionCounter:
    """A loopback TCP listener that only counts connections (proof nothing was sent)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        """An OpenAI-style base URL pointing at the listener."""
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def counter():
    """A loopback listener that counts the connections made to it."""
    listener = ConnectionCounter()
    yield listener
    listener.close()


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    """A 640x480 JPEG of a real photo."""
    return tier_media.save_jpeg(tier_media.photo(640, 480, "coffee"), tmp_path / "coffee.jpg")


def test_ask_one_image_json(vllm_server, photo_path):
    result = ask_json(vllm_server, str(photo_path), max_tokens=3)
    assert isinstance(result["answer"], str)
    assert result["model"] == vllm_server.model
    assert result["finish_reason"] in ("length", "stop")
    usage = result["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 1 <= usage["completion_tokens"] <= 3
    [item] = result["plan"]["items"]
    check_plan_item(item)
    assert result["plan"]["totals"]["items"] == 1
    assert usage["prompt_tokens"] > item["visual_tokens"]


def test_ask_four_images(vllm_server, tmp_path):
    names = ("astronaut", "chelsea", "coffee", "astronaut")
    paths = [str(tier_media.save_jpeg(tier_media.photo(800, 600, n), tmp_path / f"{i}.jpg"))
             for i, n in enumerate(names)]
    result = ask_json(vllm_server, *paths)
    plan = result["plan"]
    assert len(plan["items"]) == 4 and plan["totals"]["items"] == 4
    for item in plan["items"]:
        check_plan_item(item)
    assert plan["totals"]["visual_tokens"] == sum(i["visual_tokens"] for i in plan["items"])
    text_only = ask_json(vllm_server)["usage"]["prompt_tokens"]
    assert result["usage"]["prompt_tokens"] - text_only == plan["totals"]["visual_tokens"] + 4 * 2


def test_ask_image_from_stdin(vllm_server, photo_path):
    from_stdin = ask_json(vllm_server, "-", stdin=photo_path.read_bytes())
    from_file = ask_json(vllm_server, str(photo_path))
    [item] = from_stdin["plan"]["items"]
    check_plan_item(item)
    assert item["visual_tokens"] == from_file["plan"]["items"][0]["visual_tokens"]
    assert from_stdin["usage"]["prompt_tokens"] == from_file["usage"]["prompt_tokens"]


def test_ask_streams_the_same_answer(vllm_server, photo_path):
    streamed = ask(vllm_server, str(photo_path), max_tokens=4)
    assert streamed.returncode == 0, text(streamed)
    whole = ask_json(vllm_server, str(photo_path), max_tokens=4, extra=("--no-stream",))
    assert streamed.stdout.decode().strip() == whole["answer"].strip()


def test_text_only_question(vllm_server):
    result = ask_json(vllm_server, prompt="Say hello.")
    assert result["plan"]["items"] == []
    assert result["usage"]["prompt_tokens"] > 0


def test_dry_run_sends_nothing(counter, photo_path):
    proc = run_mmcli("ask", str(photo_path), PROMPT, "--base-url", counter.base_url, "--model",
                     "qwen2-vl-tiny", "--dry-run", "--json")
    assert proc.returncode == 0, text(proc)
    plan = json.loads(proc.stdout)
    assert plan["model"] == "qwen2-vl-tiny" and plan["family"] == "qwen2-vl"
    assert plan["base_url"].rstrip("/") == counter.base_url
    [item] = plan["items"]
    check_plan_item(item)
    assert (item["original_width"], item["original_height"]) == (640, 480)
    assert plan["totals"]["visual_tokens"] == item["visual_tokens"]
    assert "request" in plan
    assert counter.count == 0


def test_five_images_are_rejected_by_the_endpoint(vllm_server, tmp_path):
    paths = [str(tier_media.save_jpeg(tier_media.photo(200, 200, "chelsea"), tmp_path / f"{i}.jpg"))
             for i in range(5)]
    proc = ask(vllm_server, *paths)
    assert proc.returncode == 4, text(proc)
    lines = text(proc).splitlines()
    assert any(line.startswith("mmcli: error:") for line in lines), text(proc)
    hints = [line.lower() for line in lines if line.lstrip().startswith("hint:")]
    assert hints, text(proc)
    assert any("image" in h and ("limit" in h or "at most" in h) for h in hints), text(proc)


def test_corrupt_image_is_refused_before_any_request(counter, tmp_path, photo_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + bytes(200))
    proc = run_mmcli("ask", str(photo_path), str(bad), PROMPT, "--base-url", counter.base_url,
                     "--model", "qwen2-vl-tiny", "--max-tokens", "2", "--temperature", "0")
    assert proc.returncode == 3, text(proc)
    assert text(proc).startswith("mmcli: error:") and "broken.jpg" in text(proc)
    assert counter.count == 0


def _landscape(path: Path) -> Path:
    return tier_media.save_jpeg(tier_media.photo(640, 480, "coffee"), path)


def _phone_photo(path: Path) -> Path:
    return tier_media.save_jpeg(tier_media.photo(4032, 3024, "astronaut"), path)


def _portrait(path: Path) -> Path:
    return tier_media.save_jpeg(tier_media.photo(300, 1200, "chelsea"), path)


@pytest.mark.parametrize("make", [_landscape, _phone_photo, _portrait, tier_media.rotated_phone_photo],
                         ids=["640x480", "4032x3024", "300x1200", "exif-orientation-6"])
def test_server_counts_exactly_the_planned_visual_tokens(vllm_server, tmp_path, make):
    image = make(tmp_path / "photo.jpg")
    with_image = ask_json(vllm_server, str(image), max_tokens=1)
    text_only = ask_json(vllm_server, max_tokens=1)
    [item] = with_image["plan"]["items"]
    check_plan_item(item)
    extra = with_image["usage"]["prompt_tokens"] - text_only["usage"]["prompt_tokens"]
    assert extra == item["visual_tokens"] + 2


def test_exif_orientation_is_applied(counter, tmp_path):
    image = tier_media.rotated_phone_photo(tmp_path / "phone.jpg")
    proc = run_mmcli("ask", str(image), PROMPT, "--base-url", counter.base_url, "--model",
                     "qwen2-vl-tiny", "--dry-run", "--json")
    assert proc.returncode == 0, text(proc)
    [item] = json.loads(proc.stdout)["items"]
    assert {item["original_width"], item["original_height"]} == {4032, 3024}
    assert item["sent_height"] > item["sent_width"]  # upright portrait, not the stored landscape


def test_family_can_be_forced(counter, photo_path):
    proc = run_mmcli("ask", str(photo_path), PROMPT, "--base-url", counter.base_url, "--model",
                     "served-under-another-name", "--family", "qwen2-vl", "--dry-run", "--json")
    assert proc.returncode == 0, text(proc)
    plan = json.loads(proc.stdout)
    assert plan["family"] == "qwen2-vl"
    check_plan_item(plan["items"][0])
    assert counter.count == 0
