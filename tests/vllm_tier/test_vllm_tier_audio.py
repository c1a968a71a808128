"""Audio against a real vLLM serving a tiny random Qwen2-Audio: the server's prompt tokens equal the plan's.

The tiny model's template renders each audio part as <|audio_bos|><|AUDIO|><|audio_eos|>, and vLLM
replaces <|AUDIO|> with the part's audio tokens; so a request costs the same request without its audio
parts (counted by POST /tokenize) + the planned audio tokens + 2 per part.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import tier
from conftest import HEALTH_TIMEOUT, prepared_tier, unavailable
from tier_server import ServerHandle, server_env

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.support import sound  # noqa: E402

SERVED = "qwen2-audio-tiny"


@pytest.fixture(scope="module")
def audio_server(request, tmp_path_factory):
    """vLLM on the tiny Qwen2-Audio (up to 4 audio parts a prompt); stopped after this module."""
    paths = prepared_tier()
    try:
        model_dir = tier.prepare_audio_model(paths)
    except (tier.BuildError, subprocess.SubprocessError, OSError) as exc:
        unavailable(f"vLLM tier unavailable: {exc}")
    log_path = tmp_path_factory.mktemp("vllm_tier_audio") / "server.log"
    state = log_path.parent / "vllm-state"
    port = tier.free_port()
    argv = [str(paths.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", "8192", "--max-num-seqs", "2", "--limit-mm-per-prompt", '{"audio": 4}',
            "--enforce-eager", "--dtype", "bfloat16"]
    log_file = log_path.open("wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                            env=server_env(paths.venv, state), cwd=state, start_new_session=True)
    handle = ServerHandle(proc=proc, port=port, log_path=log_path, log_file=log_file, model=SERVED)
    try:
        tier.wait_healthy(handle.base_url, HEALTH_TIMEOUT, handle)
        yield handle
    finally:
        tier.stop_server(handle)


def run_mmcli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    env.update(MMCLI_AUTOSTART="0", XDG_CONFIG_HOME="/nonexistent", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def tokens_without_audio(server: ServerHandle, request: dict) -> int:
    """Prompt tokens of `request` with its audio parts left out (POST /tokenize on the same server)."""
    messages = json.loads(json.dumps(request["messages"]))
    for message in messages:
        if isinstance(message["content"], list):
            message["content"] = [p for p in message["content"] if p["type"] != "input_audio"]
    reply = httpx2.post(f"{server.root_url}/tokenize", json={"model": SERVED, "messages": messages,
                                                             "add_generation_prompt": True}, timeout=60)
    reply.raise_for_status()
    return reply.json()["count"]


@pytest.mark.parametrize("seconds, parts", [(5.0, 1), (45.0, 2)])
def test_server_prompt_tokens_equal_the_plan(audio_server, tmp_path, seconds, parts):
    clip = sound.write_audio(tmp_path / "clip.mp3", sound.speechlike(seconds, 44100), 44100, "mp3",
                             sound.chirp(seconds, 44100))
    run = run_mmcli("ask", str(clip), "What is it?", "--base-url", audio_server.base_url, "-m", SERVED,
                    "--max-tokens", "1", "--temperature", "0", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    items = result["plan"]["items"]
    planned = [item["details"]["audio_tokens"] for item in items]
    assert len(items) == parts and planned == ([125] if parts == 1 else [750, 375])
    base = tokens_without_audio(audio_server, result["plan"]["request"])
    assert result["prompt_tokens"] == base + sum(planned) + 2 * parts
    assert result["verified"] is True
