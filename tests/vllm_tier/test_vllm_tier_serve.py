"""End to end: `mmcli serve` runs the tier's real vLLM (CPU build) in the background, `mmcli ask`
finds it with no endpoint flags, and `mmcli serve stop` leaves no process behind.

This starts a second vLLM next to the session server of the other tier tests (about 3.4 GiB more),
on a free port, with a 1 GiB KV cache.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tier
import tier_media
from conftest import prepared_tier

openai = pytest.importorskip("openai")
pytest.importorskip("mmcli")

from mmcli.server.process import descendants, group_members, pid_alive  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROMPT = "Describe."


@pytest.fixture(scope="module")
def paths():
    return prepared_tier()


@pytest.fixture
def env(tmp_path):
    """A user with a private home, config and state, and no endpoint settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "VLLM_"))}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        (tmp_path / name.lower()).mkdir()
        base[name] = str(tmp_path / name.lower())
    base["MMCLI_AUTOSTART"] = "0"
    return base


def mmcli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def raw_prompt_tokens(base_url: str, model: str, image_path: Path) -> int:
    """Prompt tokens of the original image sent as it is, for the server alone to resize."""
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
    url = "data:image/jpeg;base64," + base64.b64encode(image_path.read_bytes()).decode()
    reply = client.chat.completions.create(model=model, max_tokens=1, temperature=0, messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                     {"type": "text", "text": PROMPT}]}])
    return reply.usage.prompt_tokens


def remote_fetch_error(base_url: str, model: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=model, max_tokens=1, messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"{base_url}/models"}},
                                         {"type": "text", "text": PROMPT}]}])
    return str(excinfo.value)


def test_serve_detached_then_ask_then_stop(paths, env, tmp_path):
    port = tier.free_port()
    image = tier_media.save_jpeg(tier_media.photo(2016, 1512), tmp_path / "photo.jpg")
    serve = mmcli(env, "serve", str(paths.model_dir), "--device", "cpu", "--detach", "--port", str(port),
                  "--vllm-python", str(paths.python), "--cpu-kv-cache-gib", "1", "--startup-timeout", "600",
                  timeout=700)
    state_file = Path(env["XDG_STATE_HOME"]) / "mmcli" / "server.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    pids: set[int] = set()
    try:
        assert serve.returncode == 0, serve.stderr
        assert state is not None and state["ready"]
        pids = {state["pid"], *group_members(state["pid"]), *descendants(state["pid"])}
        assert len(pids) >= 2, "vLLM runs its engine in processes of its own"

        ask = mmcli(env, "ask", str(image), PROMPT, "--max-tokens", "2", "--temperature", "0", "--json",
                    timeout=300)
        assert ask.returncode == 0, ask.stderr
        answer = json.loads(ask.stdout)
        plan = answer["plan"]
        assert plan["base_url"] == f"http://127.0.0.1:{port}/v1"
        assert answer["model"] == paths.model_dir.name and plan["family"] == "qwen2-vl"
        assert plan["items"][0]["sent_width"] < 2016  # resized on the client

        # The server's own max_pixels equals the client's: the original, unresized, costs the same.
        base_url = plan["base_url"]
        assert raw_prompt_tokens(base_url, answer["model"], image) == answer["usage"]["prompt_tokens"]
        assert "allowed domains" in remote_fetch_error(base_url, answer["model"])
    finally:
        stop = mmcli(env, "serve", "stop", timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert not group_members(state["pid"])
    assert not [pid for pid in pids if pid_alive(pid)]
    assert not state_file.exists()
