"""`mmcli serve` with the tier's real vLLM (CPU build) failing to start: a hub id with no model hub to
download it from. The user sees mmcli's one error and hint; vLLM's traceback stays in its log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tier
from conftest import prepared_tier

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paths():
    return prepared_tier()


@pytest.fixture
def env(tmp_path):
    """A user with a private home, config, state and cache (so no weights are cached), no endpoint settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "VLLM_", "HF_"))}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        (tmp_path / name.lower()).mkdir()
        base[name] = str(tmp_path / name.lower())
    base["MMCLI_AUTOSTART"] = "0"
    return base


def serve(env: dict, python: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "mmcli", "serve", "Qwen/Qwen2-VL-2B-Instruct", "--device", "cpu",
            "--port", str(tier.free_port()), "--vllm-python", str(python), "--cpu-kv-cache-gib", "1",
            "--startup-timeout", "600", *args]
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=700, check=False)


def test_a_hub_id_that_cannot_be_downloaded_is_one_error_and_a_hint(paths, env):
    run = serve(env, paths.python)
    log = Path(env["XDG_STATE_HOME"]) / "mmcli" / "server.log"
    errors = [line for line in run.stderr.splitlines() if line.startswith("mmcli: error:")]
    assert run.returncode == 5, run.stderr
    assert len(errors) == 1 and "vLLM exited before it was ready" in errors[0], run.stderr
    assert "vLLM said: OSError: We couldn't connect to 'https://huggingface.co'" in errors[0]
    assert "Traceback" not in run.stderr and 'File "' not in run.stderr  # vLLM's own lines are not shown
    assert "hint: the weights could not be downloaded" in run.stderr
    assert f"vLLM's whole log: {log}" in run.stderr
    assert "Traceback (most recent call last)" in log.read_text()  # ... and are kept in its log
    assert not (log.parent / "server.json").exists()


def test_debug_shows_the_end_of_vllms_log(paths, env):
    run = serve(env, paths.python, "--debug")
    assert run.returncode == 5, run.stderr
    assert "--- last lines of" in run.stderr and "OSError: We couldn't connect" in run.stderr
