"""The tiny Qwen2-VL served under a plain name (no family in it): mmcli learns the family from the
model's root (the folder vLLM loaded), `mmcli models` lists it, `--check` finds the server's count
equal to the plan, and `ask --verify` checks an answer exactly, all without --family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tier_media
from conftest import serve_tiny_model

pytest.importorskip("mmcli")

PLAIN_NAME = "tiny-plain"


@pytest.fixture(scope="module")
def plain_server(request, tmp_path_factory):
    """The tiny Qwen2-VL served as `tiny-plain`."""
    yield from serve_tiny_model(request, tmp_path_factory, "qwen2-vl", served_name=PLAIN_NAME)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """One HOME for the module: its state folder keeps the probe between runs, as for a user."""
    return tmp_path_factory.mktemp("mmcli-home")


def run_mmcli(home: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m mmcli ARGS`` with no endpoint variables and `home` as its home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), COLUMNS="200", MMCLI_AUTOSTART="0")
    return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, timeout=300, env=env,
                          check=False)


def json_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


def test_models_lists_the_family_from_root(plain_server, home):
    data = json_of(run_mmcli(home, "models", "--base-url", plain_server.base_url, "--json"))
    [model] = data["models"]
    assert model["id"] == PLAIN_NAME and "qwen2-vl" in model["root"]
    assert (model["family"], model["family_source"], model["max_model_len"]) == ("qwen2-vl", "root", 4096)
    assert data["vllm_version"] and data["vllm_version"].startswith("0.")
    print(f"models: root {model['root']}, vLLM {data['vllm_version']}")


def test_models_check_matches(plain_server, home):
    data = json_of(run_mmcli(home, "models", "--check", "--base-url", plain_server.base_url, "--json"))
    check = data["check"]
    print(f"check: {check}")
    assert check["matches"] is True, check["finding"]
    assert check["counted"] == check["planned"]
    # the text-only request and /tokenize of the same messages agree on the text
    assert check["tokenized_text"] == check["text_prompt_tokens"]
    text = run_mmcli(home, "models", "--check", "--base-url", plain_server.base_url)
    assert b"server and plan agree" in text.stdout, text.stderr


@pytest.mark.parametrize("size", [(4032, 2268), (640, 480)])
def test_ask_without_family_is_verified_exactly(plain_server, home, tmp_path, size):
    photo = tier_media.save_jpeg(tier_media.photo(*size), tmp_path / "photo.jpg")
    result = json_of(run_mmcli(home, "ask", str(photo), "Describe this.", "--base-url", plain_server.base_url,
                               "--max-tokens", "1", "--temperature", "0", "--json", "--verify"))
    plan = result["plan"]
    print(f"ask {size}: planned {result['planned_visual_tokens']}, server {result.get('server_visual_tokens')}, "
          f"prompt {result['prompt_tokens']}")
    assert (plan["family"], plan["family_source"], plan["model"]) == ("qwen2-vl", "root", PLAIN_NAME)
    assert result["verified"] is True
    assert result["server_visual_tokens"] == result["planned_visual_tokens"]
