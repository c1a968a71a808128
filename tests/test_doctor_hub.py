"""`mmcli doctor` when auto-start would need the model hub: the model on this disk, in the hub's cache, or only
on a hub that cannot be reached; and vLLM not found beside a server it started."""

from __future__ import annotations

import json
import os

from mmcli.server.state import ServerState, ensure_state_dir, save_state
from tests.support.fake_vllm import install_cpu_python
from tests.support.scripted_server import ScriptedServer, free_port
from tests.test_doctor import lines_by_check, write_config

DEFAULT_CPU_MODEL = "Qwen/Qwen2-VL-2B-Instruct"  # what auto-start serves with vLLM's CPU build


def autostarting_user(clean_env, tmp_path, model: str = "") -> dict:
    """The CPU build named in the config, nothing on the local port, auto-start on, an empty hub cache."""
    python = install_cpu_python(tmp_path / "vllm-cpu")
    port = free_port()
    line = f'model = "{model}"\n' if model else ""
    write_config(clean_env, f'vllm_python = "{python}"\n[profiles.local]\nbase_url = "http://127.0.0.1:{port}/v1"\n'
                            + line)
    return {"MMCLI_AUTOSTART": "1", "HF_HOME": str(tmp_path / "hf")}


def endpoint_check(run) -> dict:
    return {c["name"]: c for c in json.loads(run.stdout)["checks"]}["endpoint"]


def test_a_model_the_hub_alone_has_with_the_hub_offline_fails_and_names_a_local_folder(mmcli, clean_env, tmp_path):
    env = autostarting_user(clean_env, tmp_path)
    run = mmcli("doctor", "--json", env=dict(env, HF_HUB_OFFLINE="1"))
    check = endpoint_check(run)
    assert run.code == 5 and check["status"] == "fail", run.stdout
    assert DEFAULT_CPU_MODEL in check["detail"] and "HF_HUB_OFFLINE is set" in check["detail"]
    assert str(tmp_path / "hf" / "hub") in check["detail"] and "not in the local model cache" in check["detail"]
    assert "mmcli serve /path/to/model-folder" in check["fix"] and "tests/vllm_tier/trained/qwen2-vl" in check["fix"]


def test_a_hub_nothing_answers_at_is_named(mmcli, clean_env, tmp_path):
    env = autostarting_user(clean_env, tmp_path)
    port = free_port()
    run = mmcli("doctor", env=dict(env, HF_ENDPOINT=f"http://127.0.0.1:{port}"))
    found = lines_by_check(run.stdout)
    assert run.code == 5 and found["endpoint"].startswith("FAIL"), run.stdout
    assert f"nothing answers at 127.0.0.1:{port}" in run.stdout


def test_a_reachable_hub_a_cached_model_or_a_local_folder_can_be_started(mmcli, clean_env, tmp_path):
    env = autostarting_user(clean_env, tmp_path)
    with ScriptedServer() as hub:
        reachable = mmcli("doctor", "--json", env=dict(env, HF_ENDPOINT=hub.root_url))
    assert reachable.code == 0 and endpoint_check(reachable)["status"] == "info", reachable.stdout
    assert "starts" in endpoint_check(reachable)["detail"]

    snapshot = tmp_path / "hf" / "hub" / f"models--{DEFAULT_CPU_MODEL.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    cached = mmcli("doctor", "--json", env=dict(env, HF_HUB_OFFLINE="1"))
    assert cached.code == 0 and endpoint_check(cached)["status"] == "info", cached.stdout

    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    local = mmcli("doctor", "--json", env=dict(autostarting_user(clean_env, tmp_path / "other", str(folder)),
                                               HF_HUB_OFFLINE="1"))
    assert local.code == 0 and endpoint_check(local)["status"] == "info", local.stdout


def test_vllm_not_found_beside_a_healthy_server_it_started_is_no_warning(mmcli, clean_env, tmp_path):
    (tmp_path / "empty-bin").mkdir()
    with ScriptedServer() as server:
        state = ServerState(pid=os.getpid(), proc_start=None, started=0.0, model=server.models[0], source="/models/m",
                            family="qwen2-vl", host="127.0.0.1", port=server.port, base_url=server.base_url,
                            root_url=server.root_url, log=str(tmp_path / "server.log"), key_file=None,
                            detached=True, ready=True)
        save_state(ensure_state_dir(clean_env), state)
        write_config(clean_env, f'[profiles.local]\nbase_url = "{server.base_url}"\n')
        run = mmcli("doctor", env={"PATH": str(tmp_path / "empty-bin")})
    found = lines_by_check(run.stdout)
    assert found["server"].startswith("ok") and "healthy" in found["server"], run.stdout
    assert found["vllm"].startswith("--") and "not found with these settings" in found["vllm"]
    assert "the running server was started with a vLLM given to `mmcli serve`" in found["vllm"]
    assert "set vllm_python in the config" in run.stdout
    assert run.code == 0, run.stdout


def test_odd_hub_settings_are_read_without_guessing():
    from mmcli.server.hub import hub_cache, hub_unreachable

    assert hub_unreachable({"HF_ENDPOINT": "huggingface.co"}, 1) is None  # no URL: not ours to judge
    assert hub_unreachable({"HF_ENDPOINT": "http://127.0.0.1:99999"}, 1) is None
    assert hub_unreachable({"TRANSFORMERS_OFFLINE": "true"}, 1) == "TRANSFORMERS_OFFLINE is set"
    assert hub_unreachable({"HF_HUB_OFFLINE": "0", "HTTPS_PROXY": "http://proxy:3128"}, 1) is None
    assert str(hub_cache({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"})) == "/a"
    assert str(hub_cache({"HF_HOME": "/b", "XDG_CACHE_HOME": "/c"})) == "/b/hub"
    assert str(hub_cache({"XDG_CACHE_HOME": "/c"})) == "/c/huggingface/hub"


def test_a_hub_setting_of_a_user_who_does_not_exist_is_a_path_as_written(tmp_path):
    """`~nouser` cannot be expanded (pathlib raised RuntimeError, an internal error): it names no cache."""
    from mmcli.server.hub import hub_blocked, hub_cache

    assert str(hub_cache({"HF_HOME": "~no-such-user-here/x"})) == "~no-such-user-here/x/hub"
    assert str(hub_cache({"HF_HUB_CACHE": "~no-such-user-here"})) == "~no-such-user-here"
    why = hub_blocked("Qwen/X", False, {"XDG_CACHE_HOME": "~no-such-user-here", "HF_HUB_OFFLINE": "1"}, 1)
    assert why is not None and "HF_HUB_OFFLINE is set" in why
    cache_file = tmp_path / "cache-file"
    cache_file.write_text("{}")  # a file where the cache would be: no model in it, no error
    assert "not in the local model cache" in hub_blocked("Qwen/X", False, {"HF_HUB_CACHE": str(cache_file),
                                                                           "HF_HUB_OFFLINE": "1"}, 1)
