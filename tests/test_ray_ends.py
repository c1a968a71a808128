"""How `--engine ray` runs end and what they refuse: SIGTERM ends a run as Ctrl-C does, a Parquet folder is held
by one run at a time, and --base-url is refused with --backend vllm (Ray starts the engines itself)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply
from tests.test_batch_each import lines, make_images
from tests.test_ray_engine import _start_each, only_mmclis_lines, ray_head  # noqa: F401 - ray_head: the module's own

ray = pytest.importorskip("ray", reason="the ray extra (CI installs it: .ci/run)")
pytestmark = [pytest.mark.ray, pytest.mark.real_process, pytest.mark.xdist_group("ray")]
ROOT = Path(__file__).parent.parent


def test_sigterm_ends_a_run_as_ctrl_c_does(server, clean_env, tmp_path, ray_head):  # noqa: F811
    """SIGTERM (a supervisor, `kill`, a container stopping) to the mmcli process: the lines written are kept, the
    summary and `mmcli: interrupted` are said, exit 130, Ray is let go; not Ray's C++ crash dump (`*** SIGTERM
    received ...`, stack frames) and its own exit."""
    folder = tmp_path / "many"
    make_images(folder, 30)
    out = tmp_path / "out.jsonl"
    server.default = Reply("slow " * 10, chunk_delay=0.3)  # about 3 s an answer
    proc = _start_each(server, folder, out, clean_env, "--ray-address", ray_head, "--concurrency", "2")
    while not out.exists() or out.read_bytes().count(b"\n") < 2:  # a batch answered and written
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)  # to the process alone, as `kill PID` sends it
    stderr = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130, stderr
    kept = lines(out)
    assert len(kept) >= 2 and all(line["answer"] == "slow " * 10 for line in kept), stderr
    assert f"{len(kept)} done" in stderr and stderr.rstrip().endswith("mmcli: interrupted"), stderr
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr and only_mmclis_lines(stderr), stderr
    server.default = Reply("ok")
    again = subprocess.run([sys.executable, "-m", "mmcli", "ask", "--each", str(folder), "read", "-o", str(out),
                            "--base-url", server.base_url, "--engine", "ray", "--ray-address", ray_head],
                           env=clean_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{len(kept)} already done" in again.stderr, again.stderr
    assert len(lines(out)) == 30


def test_a_second_run_into_the_same_parquet_folder_is_refused(server, clean_env, tmp_path, ray_head):  # noqa: F811
    """Two runs into one -o NAME.parquet at once did every job twice: the folder is held by the first run, as a
    .jsonl results file is, and the second is refused before it starts Ray or sends anything."""
    import pyarrow.parquet as pq

    folder = tmp_path / "album"
    make_images(folder, 6)
    out = tmp_path / "results.parquet"
    server.default = Reply("ok", delay=1.0)
    first = _start_each(server, folder, out, clean_env, "--ray-address", ray_head, "--concurrency", "2")
    try:
        while not server.chat_requests():  # the first run is under way (its folder held since before Ray)
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "mmcli", "ask", "--each", str(folder), "read", "-o", str(out),
                                 "--base-url", server.base_url, "--engine", "ray", "--ray-address", ray_head],
                                env=clean_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        stderr = first.communicate(timeout=300)[1].decode()
    assert second.returncode == 2, second.stderr
    assert "mmcli: error: another run is writing to this results folder" in second.stderr, second.stderr
    assert "hint: wait for it to finish" in second.stderr and "Traceback" not in second.stderr
    assert first.returncode == 0 and only_mmclis_lines(stderr), stderr
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 6 and len({row["id"] for row in rows}) == 6 and len(server.chat_requests()) == 6


def test_a_parquet_folder_made_for_a_run_that_could_not_start_is_removed(mmcli, server, tmp_path):
    """The folder is made (and locked) before Ray is joined: a run that ends before writing leaves none behind."""
    from tests.support.scripted_server import free_port

    make_images(tmp_path / "album", 1)
    out = tmp_path / "never.parquet"
    run = mmcli("ask", "--each", tmp_path / "album", "read", "-o", out, "--base-url", server.base_url, "--engine",
                "ray", "--ray-address", f"127.0.0.1:{free_port()}", timeout=60)
    assert_clean_error(run, 2, "cannot reach the Ray cluster")
    assert not out.exists() and not server.chat_requests()


@pytest.mark.parametrize("command", ["each", "batch"])
def test_base_url_with_the_engine_mode_is_refused(mmcli, server, tmp_path, command):
    """--backend vllm: Ray starts vLLM engines of --model and sends nothing to a URL, so a --base-url given with it
    (or MMCLI_BASE_URL) is refused before any job is prepared, anything asked or Ray started."""
    make_images(tmp_path / "album", 1)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"command": "ask", "inputs": [str(tmp_path / "album" / "img000.png")],
                                 "prompt": "caption"}) + "\n")
    head = ["ask", "--each", tmp_path / "album", "caption"] if command == "each" else ["batch", tasks]
    engine = ["--engine", "ray", "--backend", "vllm", "--model", "Qwen/Qwen2-VL-2B-Instruct", "-o", tmp_path / "o.jsonl"]
    run = mmcli(*head, *engine, "--base-url", server.base_url, timeout=60)
    assert_clean_error(run, 2, "--base-url does not work with --backend vllm", server.base_url)
    assert "leave out --base-url" in run.stderr and "leave out --backend vllm" in run.stderr
    from_env = mmcli(*head, *engine, env={"MMCLI_BASE_URL": server.base_url}, timeout=60)
    assert_clean_error(from_env, 2, "--base-url does not work with --backend vllm")
    assert "MMCLI_BASE_URL" in from_env.stderr
    assert not server.requests and not (tmp_path / "o.jsonl").exists()


def test_the_api_says_where_the_engine_mode_is(server, tmp_path, clean_environ):
    """The Python API has no engine mode (engine="ray" sends to the Client's endpoint): backend= is refused by
    name, with the CLI's options that run it."""
    import mmcli as api

    make_images(tmp_path / "album", 1)
    client = api.Client(base_url=server.base_url)
    for call in (lambda: client.each(tmp_path / "album", "caption", engine="ray", backend="vllm"),
                 lambda: client.batch([{"command": "ask", "inputs": [], "prompt": "hi"}], engine="ray",
                                      backend="vllm")):
        with pytest.raises(api.UsageError) as refused:
            call()
        assert "backend" in refused.value.message() and "--engine ray --backend vllm" in refused.value.hint
    assert not server.requests


@pytest.mark.parametrize("level", [None, "info"])
def test_ray_lines_written_to_fd_2_while_ray_starts_are_kept_aside(capfd, monkeypatch, level):
    """What is written to fd 2 itself (as Ray's C++ code writes, beneath sys.stderr) while Ray starts is kept, not
    shown; Ray's C++ log level is `fatal` for that start unless RAY_BACKEND_LOG_LEVEL is set (then it is left as
    it is), and the process's environment is its own again after."""
    from mmcli.batch.ray_start import ray_lines_kept

    if level is None:
        monkeypatch.delenv("RAY_BACKEND_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("RAY_BACKEND_LOG_LEVEL", level)
    said: list[str] = []
    with ray_lines_kept(said):
        os.write(2, b"[2026-01-01 00:00:00,000 W 1 1] gcs_client.cc:210: Failed to get cluster ID\n")
        seen = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    os.write(2, b"after\n")
    assert said == ["[2026-01-01 00:00:00,000 W 1 1] gcs_client.cc:210: Failed to get cluster ID"]
    assert capfd.readouterr().err == "after\n"
    assert seen == (level or "fatal") and os.environ.get("RAY_BACKEND_LOG_LEVEL") == level
