"""`mmcli serve` running a fake `vllm` (tests/support/fake_vllm.py) first on PATH: process groups,
readiness, early exits, busy ports, detached state files, keys, and the client finding the server."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmcli.server.defaults import VLLM_DEFAULT_NUM_FRAMES
from mmcli.server.process import group_members, pid_alive
from mmcli.server.state import ServerState, ensure_state_dir, load_state, save_state
from tests.conftest import assert_clean_error
from tests.support.fake_vllm import ANSWER, install, kill_leftovers
from tests.support.scripted_server import free_port

# mmcli starts, detaches and stops child processes here: each command runs as a real process, whose
# exit is what a detached server must outlive.
pytestmark = pytest.mark.real_process

REPO = Path(__file__).resolve().parent.parent
WAIT = 60.0  # generous bound for conditions that normally hold within a second


@dataclass
class Fake:
    """The fake vLLM of one test: its environment, what it recorded, and the state directory."""

    env: dict
    record_path: Path
    state: Path

    def record(self) -> dict:
        return json.loads(self.record_path.read_text())

    def state_json(self) -> dict:
        return json.loads((self.state / "server.json").read_text())


@pytest.fixture
def fake(tmp_path, clean_env):
    install(tmp_path / "bin")
    record = tmp_path / "fake-record.json"
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{clean_env['PATH']}", "FAKE_VLLM_RECORD": str(record)}
    yield Fake(env, record, Path(clean_env["XDG_STATE_HOME"]) / "mmcli")
    kill_leftovers(record)


def gone(record: dict) -> bool:
    return not group_members(record["pgid"]) and not pid_alive(record["engine_pid"]) and not pid_alive(record["pid"])


def start_foreground(fake, env: dict) -> subprocess.Popen:
    """`mmcli serve` in the foreground against the fake vLLM, once its server is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "serve", "qwen2.5-vl", "--port", str(free_port())],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (fake.state / "server.json").exists() and fake.state_json()["ready"], "readiness")
    except BaseException:
        proc.kill()
        raise
    return proc


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_detach_status_ask_stop(mmcli, fake):
    port = free_port()
    run = mmcli("serve", "qwen2.5-vl", "--port", port, "--detach", env=fake.env)
    assert run.code == 0, run.stderr
    assert "ready after" in run.stderr and f"http://127.0.0.1:{port}/v1" in run.stderr
    record = fake.record()
    assert record["argv"][:2] == ["serve", "Qwen/Qwen2.5-VL-7B-Instruct"]
    assert record["pgid"] == record["pid"]  # its own process group
    assert pid_alive(record["engine_pid"]) and record["engine_pid"] in group_members(record["pgid"])
    assert (fake.state / "server.pid").read_text().strip() == str(record["pid"])
    assert "INFO loading weights" in (fake.state / "server.log").read_text()
    # what clients read: whole frame lists, and per-request media_io_kwargs on this loopback server
    argv = record["argv"]
    assert json.loads(argv[argv.index("--media-io-kwargs") + 1]) == {"video": {"num_frames": -1}}
    assert "--trust-request-mm-kwargs" in argv
    recorded = fake.state_json()
    assert recorded["frame_limit"] is None and recorded["request_mm_kwargs"] is True

    status = json.loads(mmcli("serve", "status", "--json").stdout)
    assert status["running"] and status["healthy"] and status["pid"] == record["pid"]
    assert (status["model"], status["url"]) == ("qwen2.5-vl", f"http://127.0.0.1:{port}/v1")
    text = mmcli("serve", "status")
    assert text.code == 0 and "health:  ok" in text.stdout and "uptime:" in text.stdout

    # the local profile finds the detached server's address and model by itself
    ask = mmcli("ask", "what is this?", "--no-stream")
    assert ask.code == 0, ask.stderr
    assert ask.stdout == ANSWER + "\n"

    second = mmcli("serve", "qwen2-vl", "--port", free_port(), env=fake.env)
    assert_clean_error(second, 5, "already running", f"pid {record['pid']}")

    stop = mmcli("serve", "stop")
    assert stop.code == 0 and "stopped" in stop.stderr
    assert gone(record)  # the engine (a grandchild of mmcli) too
    assert not (fake.state / "server.json").exists() and not (fake.state / "server.pid").exists()
    assert (fake.state / "server.log").exists()
    assert mmcli("serve", "status").code == 5


def test_key_file_environment_and_client(mmcli, fake):
    run = mmcli("serve", "qwen2.5-vl", "--port", free_port(), "--require-key", "--detach", env=fake.env)
    assert run.code == 0, run.stderr
    key_file = fake.state / "api-key"
    key = key_file.read_text().strip()
    assert len(key) > 30 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(fake.state.stat().st_mode) == 0o700
    record = fake.record()
    assert record["env"]["VLLM_API_KEY"] == key
    assert not any(key in arg for arg in record["argv"])
    assert str(key_file) in run.stderr
    for text in (run.stdout, run.stderr, (fake.state / "server.log").read_text(),
                 (fake.state / "server.json").read_text()):
        assert key not in text
    ask = mmcli("ask", "hello", "--no-stream")  # the fake refuses requests without the key
    assert ask.code == 0, ask.stderr
    assert key not in ask.output
    assert mmcli("serve", "stop").code == 0
    assert not key_file.exists() and gone(record)


def test_sigterm_ignored_means_sigkill_after_the_grace(mmcli, fake):
    env = dict(fake.env, FAKE_VLLM_IGNORE_TERM="1")
    assert mmcli("serve", "qwen2.5-vl", "--port", free_port(), "--detach", env=env).code == 0
    record = fake.record()
    stop = mmcli("serve", "stop", "--stop-timeout", "0.5")
    assert stop.code == 0, stop.stderr
    assert gone(record)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_foreground_signal_stops_the_whole_group(fake, clean_env, sig):
    env = dict(clean_env, **fake.env)
    proc = start_foreground(fake, env)
    try:
        record = fake.record()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert b"stopping vLLM" in err and b"Traceback" not in err
    assert gone(record)
    assert not (fake.state / "server.json").exists()


def test_foreground_child_dying_is_one_error_and_cleans_up(fake, clean_env):
    env = dict(clean_env, **fake.env)
    proc = start_foreground(fake, env)
    try:
        record = fake.record()
        os.kill(record["pid"], signal.SIGKILL)  # the server dies; its engine would live on
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == 5, text
    assert "mmcli: error: vLLM exited" in text and "killed by SIGKILL" in text
    assert "hint: vLLM's whole log: " in text and "INFO listening on" not in text
    assert gone(record)


def test_a_child_ended_by_a_signal_with_no_name_is_one_error(fake, clean_env):
    # Linux's real-time signals (SIGRTMIN+n) are valid signals without a name of their own
    unnamed = next(n for n in sorted(signal.valid_signals()) if n > signal.SIGSYS and not isinstance(n, signal.Signals))
    env = dict(clean_env, **fake.env)
    proc = start_foreground(fake, env)
    try:
        os.kill(fake.record()["pid"], unnamed)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == 5 and "Traceback" not in text, text
    assert "mmcli: error: vLLM exited" in text and f"killed by signal {unnamed}" in text


def test_stop_from_elsewhere_ends_a_foreground_server_quietly(mmcli, fake, clean_env):
    env = dict(clean_env, **fake.env)
    proc = start_foreground(fake, env)
    try:
        assert "(foreground)" in mmcli("serve", "status").stdout
        assert mmcli("serve", "stop").code == 0
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"stopped by `mmcli serve stop`" in err
    assert gone(fake.record())


def test_early_exit_is_one_error_with_vllms_last_word_and_exits_5(mmcli, fake):
    run = mmcli("serve", "qwen2.5-vl", "--port", free_port(), env=dict(fake.env, FAKE_VLLM_MODE="exit"))
    assert_clean_error(run, 5, "vLLM exited before it was ready", "exit code 3",
                       "vLLM said: torch.OutOfMemoryError: CUDA out of memory (fake)")
    assert "--- last lines of" not in run.stderr and "INFO loading weights" not in run.stderr
    log = fake.state / "server.log"
    assert "hint: not enough memory" in run.stderr and f"vLLM's whole log: {log}" in run.stderr
    assert "CUDA out of memory (fake)" in log.read_text()  # the log is kept whole
    assert gone(fake.record())
    assert not (fake.state / "server.json").exists()


def test_debug_shows_the_end_of_vllms_log_too(mmcli, fake):
    run = mmcli("serve", "qwen2.5-vl", "--port", free_port(), "--debug", env=dict(fake.env, FAKE_VLLM_MODE="exit"))
    assert run.code == 5 and "--- last lines of" in run.stderr and "INFO loading weights" in run.stderr
    assert "mmcli: error: vLLM exited before it was ready" in run.stderr


def test_a_hub_that_cannot_be_reached_is_named_with_what_to_do(mmcli, fake):
    run = mmcli("serve", "qwen2.5-vl", "--port", free_port(), env=dict(fake.env, FAKE_VLLM_MODE="offline"))
    # vLLM's traceback stays in its log: the user sees mmcli's one error and hint
    assert_clean_error(run, 5, "vLLM exited before it was ready", "exit code 1",
                       "vLLM said: OSError: We couldn't connect to 'https://huggingface.co'")
    assert "File \"" not in run.stderr and "raise OSError" not in run.stderr
    assert ("hint: the weights could not be downloaded: check the network or HF_TOKEN, or serve a local folder "
            f"(mmcli serve ./folder); vLLM's whole log: {fake.state / 'server.log'}") in run.stderr
    assert "Traceback (most recent call last)" in (fake.state / "server.log").read_text()
    assert "check the model name" not in run.stderr
    assert gone(fake.record())


def test_busy_port_fails_before_starting_anything(mmcli, fake):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        run = mmcli("serve", "qwen2.5-vl", "--port", port, "--detach", env=fake.env)
    assert_clean_error(run, 5, f"cannot listen on 127.0.0.1:{port}", "already in use")
    assert "--port" in run.stderr
    assert not fake.record_path.exists()  # vLLM was never started


NOT_HERE = "10.255.255.1"  # a private address no interface of a test machine is expected to have


def test_a_host_that_is_not_this_machines_is_a_host_error(mmcli, fake):
    with socket.socket() as probe:
        try:
            probe.bind((NOT_HERE, 0))
            pytest.skip(f"{NOT_HERE} is an address of this machine")
        except OSError:
            pass
    run = mmcli("serve", "qwen2.5-vl", "--host", NOT_HERE, "--port", free_port(), "--detach", env=fake.env)
    assert_clean_error(run, 2, "cannot use --host", NOT_HERE, "not one of this machine's")
    hint = [line for line in run.stderr.splitlines() if line.startswith("hint:")]
    assert len(hint) == 1 and "127.0.0.1" in hint[0] and "port" not in hint[0]
    assert not fake.record_path.exists()  # vLLM was never started
    assert not (fake.state / "api-key").exists()  # nor a key made for it


def test_a_server_recorded_before_the_frame_fields_reads_as_vllms_default(clean_env):
    directory = ensure_state_dir(clean_env)
    state = ServerState(pid=os.getpid(), proc_start=None, started=0.0, model="m", source="s", family="generic",
                        host="127.0.0.1", port=1, base_url="http://127.0.0.1:1/v1", root_url="http://127.0.0.1:1",
                        log="server.log", key_file=None, detached=True)
    save_state(directory, state)
    data = json.loads((directory / "server.json").read_text())
    for name in ("frame_limit", "request_mm_kwargs"):
        del data[name]
    data["written_by_a_newer_mmcli"] = 1
    (directory / "server.json").write_text(json.dumps(data))
    loaded = load_state(clean_env)
    assert loaded is not None and loaded.pid == os.getpid()
    assert loaded.frame_limit == VLLM_DEFAULT_NUM_FRAMES == 32 and loaded.request_mm_kwargs is False
    (directory / "server.json").write_text("[1, 2]")
    assert load_state(clean_env) is None


def test_startup_timeout_stops_the_group_and_exits_6(mmcli, fake):
    run = mmcli("serve", "qwen2.5-vl", "--port", free_port(), "--startup-timeout", "1",
                env=dict(fake.env, FAKE_VLLM_MODE="never"))
    assert_clean_error(run, 6, "vLLM was not ready in time")
    assert "--startup-timeout" in run.stderr
    assert gone(fake.record())


def test_script_form_when_the_vllm_interpreter_lacks_the_module(fake, mmcli):
    run = mmcli("serve", "qwen2.5-vl", "--dry-run", env=fake.env)
    assert run.code == 0, run.stderr
    first_command_line = next(line for line in run.stdout.splitlines() if "serve Qwen" in line)
    assert first_command_line.startswith(str(Path(fake.env["PATH"].split(os.pathsep)[0]) / "vllm"))


def test_a_reused_pid_is_never_signalled(mmcli, fake, clean_env):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        fake.state.mkdir(parents=True)
        record = {"pid": bystander.pid, "proc_start": "1", "started": 0.0, "model": "m", "source": "m",
                  "family": "generic", "host": "127.0.0.1", "port": 1, "base_url": "http://127.0.0.1:1/v1",
                  "root_url": "http://127.0.0.1:1", "log": "/nonexistent", "key_file": None, "detached": True}
        (fake.state / "server.json").write_text(json.dumps(record))  # a record whose process is long gone
        assert json.loads(mmcli("serve", "status", "--json").stdout) == {"running": False}
        stop = mmcli("serve", "stop")
        assert stop.code == 0 and "no server started by mmcli is running" in stop.stderr
        assert bystander.poll() is None  # same pid, different process: left alone
        assert not (fake.state / "server.json").exists()
    finally:
        bystander.kill()
        bystander.wait()
