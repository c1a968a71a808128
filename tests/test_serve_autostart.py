"""Auto-start: a client command on the local profile starts vLLM (a fake one here) when nothing answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmcli.settings import EndpointFlags, resolve_settings
from mmcli.errors import UsageError
from mmcli.server.process import group_members
from tests.conftest import assert_clean_error
from tests.support.fake_vllm import ANSWER, install, kill_leftovers
from tests.support.scripted_server import free_port

# mmcli starts, detaches and stops child processes here: each command runs as a real process, whose
# exit is what a detached server must outlive.
pytestmark = pytest.mark.real_process


@pytest.fixture
def local(tmp_path, clean_env, server):
    """A local profile on a free port, a fake `vllm` on PATH, auto-start allowed, and a model hub that takes
    connections (a local server: the fake vLLM downloads nothing)."""
    port = free_port()
    config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.local]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    install(tmp_path / "bin")
    record = tmp_path / "fake-record.json"
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{clean_env['PATH']}", "FAKE_VLLM_RECORD": str(record),
           "MMCLI_AUTOSTART": "1", "HF_ENDPOINT": server.base_url.rsplit("/v1", 1)[0]}
    yield {"port": port, "config": config, "record": record, "env": env}
    kill_leftovers(record)


def test_autostart_serves_the_default_model_in_the_background(mmcli, local):
    first = mmcli("ask", "what is this?", "--no-stream", env=local["env"])
    assert first.code == 0, first.stderr
    assert first.stdout == ANSWER + "\n"
    assert f"nothing answers at http://127.0.0.1:{local['port']}/v1; starting qwen2.5-vl" in first.stderr
    record = json.loads(local["record"].read_text())
    argv = record["argv"]
    assert argv[argv.index("--port") + 1] == str(local["port"])
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--served-model-name") + 1] == "qwen2.5-vl"

    again = mmcli("ask", "and now?", "--no-stream", env=local["env"])
    assert again.code == 0 and "starting" not in again.stderr
    assert json.loads(local["record"].read_text())["pid"] == record["pid"]  # the same server answered

    assert mmcli("serve", "stop").code == 0
    assert not group_members(record["pgid"])


def test_autostart_without_the_model_hub_says_the_weights_could_not_be_downloaded(mmcli, local):
    run = mmcli("ask", "what is this?", "--no-stream", env=dict(local["env"], FAKE_VLLM_MODE="offline"))
    assert_clean_error(run, 5, "vLLM exited before it was ready", "vLLM said: OSError: We couldn't connect")
    assert "hint: the weights could not be downloaded: check the network or HF_TOKEN" in run.stderr
    assert "vLLM's whole log: " in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("hub", ["offline", "unreachable"])
def test_autostart_refuses_at_once_a_model_the_hub_cannot_give(mmcli, local, tmp_path, hub):
    """Neither on this disk, nor in the hub's cache, nor reachable: refused before vLLM is started (vLLM would
    try the hub for a minute and fail the same way)."""
    env = dict(local["env"], HF_HUB_CACHE=str(tmp_path / "hub-cache"))
    if hub == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    run = mmcli("ask", "what is this?", "--no-stream", env=env)
    assert_clean_error(run, 5, "auto-start cannot serve qwen2.5-vl", "not in the local model cache",
                       "HF_HUB_OFFLINE is set" if hub == "offline" else "nothing answers at 127.0.0.1")
    assert "hint: serve a model folder on this disk" in run.stderr
    assert not local["record"].exists()  # no vLLM was started


def test_an_hf_endpoint_that_is_no_url_leaves_the_hub_check_to_vllm(mmcli, local, tmp_path):
    """An HF_ENDPOINT urlsplit refuses cannot be checked: vLLM is started (its hub library says what it thinks of
    it), never an internal error."""
    env = dict(local["env"], HF_HUB_CACHE=str(tmp_path / "hub-cache"), HF_ENDPOINT="http://[::1")
    run = mmcli("ask", "what is this?", "--no-stream", env=env)
    assert run.code == 0, run.stderr
    assert mmcli("serve", "stop").code == 0


@pytest.mark.parametrize("host", ["a" * 70 + ".com", "a..b"])
def test_an_hf_endpoint_host_no_name_server_takes_is_unreachable(mmcli, local, tmp_path, host):
    """A host name the IDNA codec refuses (a label empty or past 63 letters) answers nowhere: refused as any
    unreachable hub is, not an internal error."""
    env = dict(local["env"], HF_HUB_CACHE=str(tmp_path / "hub-cache"), HF_ENDPOINT=f"http://{host}")
    run = mmcli("ask", "what is this?", "--no-stream", env=env)
    assert_clean_error(run, 5, "auto-start cannot serve qwen2.5-vl", f"nothing answers at {host}:80")
    assert not local["record"].exists()


def test_autostart_serves_a_model_in_the_hub_cache_without_the_hub(mmcli, local, tmp_path):
    cache = tmp_path / "hub-cache"
    snapshot = cache / "models--Qwen--Qwen3-VL-4B-Instruct" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    local["config"].write_text(local["config"].read_text() + 'model = "qwen3-vl-4b"\n')
    run = mmcli("ask", "hi", "--no-stream", env=dict(local["env"], HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1"))
    assert run.code == 0, run.stderr
    assert mmcli("serve", "stop").code == 0


def test_autostart_uses_the_profile_model(mmcli, local):
    local["config"].write_text(local["config"].read_text() + 'model = "qwen3-vl-4b"\n')
    run = mmcli("ask", "hi", "--no-stream", env=local["env"])
    assert run.code == 0, run.stderr
    argv = json.loads(local["record"].read_text())["argv"]
    assert argv[1] == "Qwen/Qwen3-VL-4B-Instruct" and "qwen3-vl-4b" in argv
    assert mmcli("serve", "stop").code == 0


@pytest.mark.parametrize("how", ["env", "flag", "config"])
def test_autostart_can_be_turned_off(mmcli, local, how):
    env = dict(local["env"])
    args = ["ask", "hi", "--no-stream"]
    if how == "env":
        env["MMCLI_AUTOSTART"] = "0"
    elif how == "flag":
        args.append("--no-autostart")
    else:
        env["MMCLI_AUTOSTART"] = ""
        local["config"].write_text("autostart = false\n" + local["config"].read_text())
    run = mmcli(*args, env=env)
    assert_clean_error(run, 5, "cannot reach", f"127.0.0.1:{local['port']}")
    assert f"mmcli serve --port {local['port']}" in run.stderr
    assert not local["record"].exists()


def test_no_autostart_for_an_endpoint_named_on_the_command_line(mmcli, local):
    url = f"http://127.0.0.1:{free_port()}/v1"
    run = mmcli("ask", "hi", "--base-url", url, env=local["env"])
    assert_clean_error(run, 5, "cannot reach", url)
    assert not local["record"].exists()


def test_without_vllm_the_error_says_how_to_serve(mmcli, local, clean_env):
    run = mmcli("ask", "hi", env=dict(local["env"], PATH=clean_env["PATH"]))
    assert_clean_error(run, 5, "cannot reach")
    assert "pip install -e '.[serve]'" in run.stderr and "mmcli doctor" in run.stderr and "--base-url" in run.stderr
    # Without a GPU the extra alone fails: its torch is only on PyTorch's CPU index, so the hint names it.
    assert "pip install -e '.[cpu]' --extra-index-url https://download.pytorch.org/whl/cpu" in run.stderr


def test_dry_run_never_starts_anything(mmcli, local):
    assert mmcli("ask", "hi", "--dry-run", env=local["env"]).code == 0
    assert not local["record"].exists()


def settings(tmp_path, config: str = "", flags: EndpointFlags = EndpointFlags(), **env):
    path = tmp_path / "config.toml"
    path.write_text(config)
    return resolve_settings(flags, {"MMCLI_CONFIG": str(path), "XDG_STATE_HOME": str(tmp_path / "state"), **env})


def test_autostart_precedence(tmp_path):
    assert settings(tmp_path).autostart is True
    assert settings(tmp_path, "autostart = false\n").autostart is False
    assert settings(tmp_path, "autostart = false\n", MMCLI_AUTOSTART="yes").autostart is True
    assert settings(tmp_path, MMCLI_AUTOSTART="1", flags=EndpointFlags(autostart=False)).autostart is False
    assert settings(tmp_path, 'vllm_python = "/opt/vllm/bin/python"\n').vllm_python == "/opt/vllm/bin/python"


@pytest.mark.parametrize("config, env", [('autostart = "no"\n', {}), ("", {"MMCLI_AUTOSTART": "maybe"}),
                                         ("vllm_python = 3\n", {})])
def test_bad_autostart_settings(tmp_path, config, env):
    with pytest.raises(UsageError):
        settings(tmp_path, config, **env)
