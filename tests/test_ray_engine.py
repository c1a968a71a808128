"""--engine ray on a real single-node Ray (2 CPUs, one for the whole module) against a scripted local server:
the same lines as a local --each run, failures as failed lines, resume, Parquet, and the engine mode's check."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Run, assert_clean_error
from tests.support import media
from tests.support.pdfs import text_pdf
from tests.support.scripted_server import Reply, Status, data_url_parts
from tests.test_batch_each import lines, make_images

ray = pytest.importorskip("ray", reason="the ray extra (CI installs it: .ci/run)")
pytestmark = [pytest.mark.ray, pytest.mark.real_process, pytest.mark.xdist_group("ray")]  # one Ray, one worker
ROOT = Path(__file__).parent.parent
TIMED = ("seconds",)


def start_head(env: dict, port: int, cpus: int = 2) -> subprocess.Popen:
    """`ray start --head --block` on 127.0.0.1:port in its own process group (stop it with os.killpg)."""
    return subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
                             f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats",
                             f"--object-store-memory={100 * cpus * 2**20}"], env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A real single-node Ray (2 CPUs) for the module, started as `ray start --head --block` and stopped by
    its own process group; its workers import this checkout and keep their state in a temp folder."""
    from tests.support.scripted_server import free_port

    home = tmp_path_factory.mktemp("ray-home")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(home), MMCLI_AUTOSTART="0",
               XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"))
    head = start_head(env, port)
    yield f"127.0.0.1:{port}"
    # SIGKILL, as for the heads the tests start themselves: `ray start --block` takes about 60 s to end on a
    # SIGTERM, and nothing here looks at how Ray shuts down.
    os.killpg(head.pid, signal.SIGKILL)
    head.wait()


def album(folder: Path, photos: int = 6) -> Path:
    """Photos, a two-page PDF, and a file named like a photo that is not one."""
    make_images(folder, photos)
    text_pdf(folder / "paper.pdf", 2)
    media.make_truncated_jpeg(folder, "broken.jpg")
    return folder


def run_each(mmcli, server, command, folder, out, *extra, env=None):
    """`command --each folder` to `server`; with --backend vllm (Ray starts the engines) no --base-url is given."""
    url = [] if "vllm" in extra else ["--base-url", server.base_url]
    return mmcli(command, "--each", folder, "what is it?", "-o", out, *url, *extra, env=env, timeout=300)


def by_id(path: Path) -> dict[str, dict]:
    return {line["id"]: {k: v for k, v in line.items() if k not in TIMED} for line in lines(path)}


def sent_media(server) -> set[bytes]:
    return {raw for request in server.chat_requests() for _, raw in data_url_parts(request.json)}


@pytest.mark.parametrize("command", ["docqa", "detect"])
def test_ray_lines_equal_a_local_run(mmcli, server, tmp_path, command, ray_head):
    folder = album(tmp_path / "album")
    local_out = tmp_path / "local" if command == "detect" else tmp_path / "local.jsonl"
    ray_out = tmp_path / "ray" if command == "detect" else tmp_path / "ray.jsonl"
    local = run_each(mmcli, server, command, folder, local_out)
    local_media = sent_media(server)
    asked = len(server.chat_requests())
    on_ray = run_each(mmcli, server, command, folder, ray_out, "--engine", "ray", "--ray-address", ray_head)
    assert local.code == on_ray.code == 8, on_ray.stderr  # the broken photo is a failed job in both
    results = "results.jsonl" if command == "detect" else ""
    local_lines, ray_lines = by_id(local_out / results), by_id(ray_out / results)
    assert len(ray_lines) == 8 and ray_lines == local_lines
    assert len(server.chat_requests()) == 2 * asked and sent_media(server) == local_media  # the same bytes at the same grid, prepared in Ray's workers
    failed = [line for line in ray_lines.values() if line.get("error")]
    assert [Path(line["sources"][0]).name for line in failed] == ["broken.jpg"]
    assert failed[0]["error"]["exit_code"] == 3
    assert "7 done, 1 failed, 0 already done" in on_ray.stderr


@pytest.mark.parametrize("concurrency", [2, 4, 6])
def test_the_server_never_sees_more_than_concurrency_at_once(mmcli, server, tmp_path, ray_head, concurrency):
    """Ray Data runs one batch at a time per worker: workers x jobs per worker is at most --concurrency (6 on
    this 2-CPU Ray was two workers of 4, 8 at once), and with 24 slow jobs it gets there, as --each does."""
    make_images(tmp_path / "album", 24)
    server.default = Reply("ok", delay=0.5)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "r.jsonl", "--engine", "ray",
                   "--ray-address", ray_head, "--concurrency", str(concurrency))
    assert run.code == 0, run.stderr
    assert len(lines(tmp_path / "r.jsonl")) == 24 and len(server.chat_requests()) == 24
    assert server.peak_in_flight == concurrency


@pytest.mark.parametrize(("concurrency", "cpus", "jobs", "split"), [
    (1, 2, 10, (1, 1)), (4, 2, 10, (1, 4)), (6, 2, 10, (1, 6)), (8, 2, 10, (2, 4)), (9, 2, 10, (2, 4)),
    (64, 2, 500, (2, 32)), (64, 16, 500, (16, 4)), (16, 8, 3, (1, 4)), (8, 1, 0, (1, 8))])
def test_workers_times_their_jobs_stay_within_concurrency(concurrency, cpus, jobs, split):
    from mmcli.batch.ray_workers import shares

    assert shares(concurrency, cpus, jobs) == split
    assert split[0] * split[1] <= concurrency


def test_client_each_and_batch_on_ray_yield_the_cli_lines(mmcli, server, tmp_path, ray_head, clean_environ):
    """Client.each(engine="ray") in this process joins the Ray the CLI joins and yields, and writes, the very
    lines of `--each --engine ray`; Client.batch(engine="ray") runs a tasks list there too."""
    import mmcli as api

    folder = album(tmp_path / "album", photos=3)
    cli_out, api_out = tmp_path / "cli.jsonl", tmp_path / "api.jsonl"
    level = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    cli = run_each(mmcli, server, "ask", folder, cli_out, "--engine", "ray", "--ray-address", ray_head)
    assert cli.code == 8, cli.stderr  # the broken photo
    client = api.Client(base_url=server.base_url)
    jobs = client.each(folder, "what is it?", output=api_out, engine="ray", ray_address=ray_head)
    items = {item["id"]: {k: v for k, v in item.items() if k not in TIMED} for item in jobs}
    assert len(items) == 4 and items == by_id(cli_out) == by_id(api_out)  # three photos and the broken one
    assert jobs.tally.done == 3 and jobs.failed == 1
    with pytest.raises(api.JobsFailed):
        jobs.check()
    assert not ray.is_initialized()  # the Ray this call joined is let go
    assert os.environ.get("RAY_BACKEND_LOG_LEVEL") == level  # set for Ray's start only, the process's own again
    tasks = [{"id": f"t{n}", "command": "ask", "inputs": [str(folder / f"img00{n}.png")], "prompt": "caption"}
             for n in range(2)]
    done = list(client.batch(tasks, engine="ray", ray_address=ray_head, concurrency=2))
    assert sorted(item["id"] for item in done) == ["t0", "t1"] and all(item["answer"] == "ok" for item in done)
    partly = client.each(folder, "another question", output=tmp_path / "partly.jsonl", engine="ray",
                         ray_address=ray_head, concurrency=1)
    first = next(partly)
    partly.close()  # leaving the loop early: the lines written stay, the file is closed, Ray is let go
    assert lines(tmp_path / "partly.jsonl")[0] == first and not ray.is_initialized()


def test_503s_are_retried_and_a_rerun_does_each_job_once(mmcli, server, tmp_path, ray_head):
    folder = tmp_path / "album"
    make_images(folder, 5)
    out = tmp_path / "ray.jsonl"
    server.script(Status(503), Status(503), Reply("ok"), Status(400), *[Reply("ok")] * 3)
    first = run_each(mmcli, server, "ask", folder, out, "--engine", "ray", "--ray-address", ray_head, "--concurrency", "1")
    assert first.code == 8, first.stderr
    assert sorted(bool(line.get("error")) for line in lines(out)) == [False] * 4 + [True]
    assert [line["error"]["exit_code"] for line in lines(out) if line.get("error")] == [4]
    asked = len(server.chat_requests())
    again = run_each(mmcli, server, "ask", folder, out, "--engine", "ray", "--ray-address", ray_head)
    assert again.code == 8, again.stderr
    assert "0 done, 0 failed, 4 already done, 1 failed before" in again.stderr
    assert len(server.chat_requests()) == asked  # nothing sent twice
    retry = run_each(mmcli, server, "ask", folder, out, "--engine", "ray", "--ray-address", ray_head, "--retry-failed")
    assert retry.code == 0, retry.stderr
    assert len(server.chat_requests()) == asked + 1 and len(lines(out)) == 6


def test_parquet_results_are_readable_and_resumed(mmcli, server, tmp_path, ray_head):
    import pyarrow.parquet as pq

    folder = tmp_path / "album"
    make_images(folder, 3)
    out = tmp_path / "results.parquet"
    first = run_each(mmcli, server, "ask", folder, out, "--engine", "ray", "--ray-address", ray_head)
    assert first.code == 0, first.stderr
    assert "UserWarning" not in first.stderr and "instead of 'fn'" not in first.stderr  # Ray's noise kept out
    table = pq.read_table(out)
    assert sorted(table.column_names) == ["fingerprint", "id", "line", "status"]
    rows = table.to_pylist()
    assert len(rows) == 3 and {row["status"] for row in rows} == {"done"}
    assert all(json.loads(row["line"])["answer"] == "ok" and json.loads(row["line"])["id"] == row["id"] for row in rows)
    make_images(folder, 1, start=3)
    second = run_each(mmcli, server, "ask", folder, out, "--engine", "ray", "--ray-address", ray_head)
    assert second.code == 0 and "1 done, 0 failed, 3 already done" in second.stderr, second.stderr
    assert "Starting execution" not in second.stderr and " INFO " not in second.stderr, second.stderr  # Ray Data's
    assert len(pq.read_table(out).to_pylist()) == 4 and len(server.chat_requests()) == 4


def test_batch_tasks_file_on_ray(mmcli, server, tmp_path, ray_head):
    make_images(tmp_path, 2)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(json.dumps({"id": f"t{n}", "command": "ask", "inputs": [str(tmp_path / f"img00{n}.png")],
                                           "prompt": "caption", "max-tokens": 20}) for n in range(2)) + "\n")
    out = tmp_path / "out.jsonl"
    run = mmcli("batch", tasks, "-o", out, "--base-url", server.base_url, "--engine", "ray", "--ray-address", ray_head, timeout=300)
    assert run.code == 0, run.stderr
    assert only_mmclis_lines(run.stderr), run.stderr
    assert sorted(line["id"] for line in lines(out)) == ["t0", "t1"]
    assert all(r.json["max_tokens"] == 20 for r in server.chat_requests())


def test_engine_mode_is_built_and_refused_without_gpus(mmcli, server, tmp_path, ray_head):
    make_images(tmp_path / "album", 1)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray", "--ray-address", ray_head,
                   "--backend", "vllm", "--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--concurrency", "2")
    assert_clean_error(run, 2, "--backend vllm cannot run here", "2 GPU(s)", "the Ray cluster has 0")
    assert not server.chat_requests() and not (tmp_path / "o.jsonl").exists()


def test_engine_config_is_what_ray_would_run(ray_head):
    from mmcli.batch.ray_vllm import engine_config, missing_for_engine
    from mmcli.batch.work import EngineOptions

    options = EngineOptions(tensor_parallel_size=2, max_model_len=8192, engine_args=(("dtype", "bfloat16"),))
    config = engine_config(ray, "Qwen/Qwen2.5-VL-7B-Instruct", replicas=3, options=options)
    assert config.model_source == "Qwen/Qwen2.5-VL-7B-Instruct" and config.concurrency == 3
    assert config.engine_kwargs == {"tensor_parallel_size": 2, "max_model_len": 8192, "dtype": "bfloat16",
                                    "task_type": "generate"}
    assert config.should_continue_on_error and config.placement_group_config is None  # Ray's GPU bundles
    on_cpu = engine_config(ray, "Qwen/Qwen2.5-VL-7B-Instruct", replicas=3, options=EngineOptions(device="cpu"))
    assert on_cpu.placement_group_config["bundles"] == [{"CPU": 1.0, "GPU": 0.0}]  # no GPU asked of the cluster
    ray.init(address=ray_head, log_to_driver=False)
    try:
        missing, missing_cpu = missing_for_engine(ray, config), missing_for_engine(ray, on_cpu, "cpu")
    finally:
        ray.shutdown()
    assert "6 GPU(s) (3 replica(s) x tensor parallel 2); the Ray cluster has 0" in missing
    assert any(m.startswith("4 CPU(s) (3 engine(s)") and m.endswith("the Ray cluster has 2") for m in missing_cpu)
    assert not any("GPU" in m for m in missing_cpu)


def test_engine_mode_on_too_few_cpus_says_what_is_missing(mmcli, server, tmp_path, ray_head):
    make_images(tmp_path / "album", 1)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray", "--ray-address",
                   ray_head, "--backend", "vllm", "--device", "cpu", "--model", str(folder), "--family", "qwen2-vl",
                   "--concurrency", "2")
    assert_clean_error(run, 2, "--backend vllm cannot run here", "3 CPU(s) (2 engine(s)", "the Ray cluster has 2")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("made", ["nothing", "an empty folder"])
def test_engine_mode_refuses_a_model_folder_it_cannot_load(mmcli, server, tmp_path, made):
    make_images(tmp_path / "album", 1)
    folder = tmp_path / "model"
    if made == "an empty folder":
        folder.mkdir()
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray", "--backend",
                   "vllm", "--device", "cpu", "--model", str(folder))
    assert_clean_error(run, 2, "the model folder " + ("has no config.json" if folder.exists() else "does not exist"))
    assert not (tmp_path / "o.jsonl").exists()


def test_engine_options_need_the_engine_mode(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 1)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray",
                   "--max-model-len", "4096")
    assert_clean_error(run, 2, "--max-model-len works with --engine ray --backend vllm")
    bad = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray", "--backend",
                   "vllm", "--model", "Qwen/Qwen2-VL-2B-Instruct", "--engine-arg", "dtype")
    assert_clean_error(bad, 2, "--engine-arg takes KEY=VALUE")


def test_local_options_refuse_ray_flags(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 1)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--ray-address", "h:6379")
    assert_clean_error(run, 2, "--ray-address and --backend work with --engine ray")


def test_without_ray_the_error_says_how_to_install(tmp_path, clean_env):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    make_images(tmp_path / "album", 1)
    env = dict(clean_env, PYTHONPATH=f"{shim}:{ROOT}")
    proc = subprocess.run([sys.executable, "-m", "mmcli", "ask", "--each", str(tmp_path / "album"), "caption",
                           "--engine", "ray", "--base-url", "http://127.0.0.1:9/v1"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "mmcli: error: --engine ray needs Ray Data, which is not installed" in proc.stderr
    assert "pip install -e '.[ray]'" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_cluster_is_one_clear_error(mmcli, server, tmp_path):
    from tests.support.scripted_server import free_port

    make_images(tmp_path / "album", 1)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray",
                   "--ray-address", f"127.0.0.1:{free_port()}")
    assert_clean_error(run, 2, "cannot reach the Ray cluster")
    assert not server.chat_requests() and not (tmp_path / "o.jsonl").exists()


def test_without_an_address_the_run_starts_its_own_ray(mmcli, server, tmp_path, ray_head):
    """With a Ray already running on this machine (the module's) and no address, the run starts a Ray of its
    own (address "local"), whose workers import this checkout, and stops it."""
    make_images(tmp_path / "album", 2)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray",
                   env={"RAY_ADDRESS": ""})
    assert run.code == 0, run.stderr
    assert [line["answer"] for line in lines(tmp_path / "o.jsonl")] == ["ok", "ok"]
    assert only_mmclis_lines(run.stderr)


def only_mmclis_lines(stderr: str) -> bool:
    """Every line on standard error is mmcli's: none of Ray's (its C++ code wrote one per run, that Ray Data's
    actors take their arguments from the object store; a local Ray's start wrote more)."""
    return all(line.startswith("mmcli: ") for line in stderr.splitlines())


def _start_each(server, folder, out, env, *extra):
    """mmcli --each --engine ray as its own process (its own process group), to be interrupted."""
    return subprocess.Popen([sys.executable, "-m", "mmcli", "ask", "--each", str(folder), "read", "-o", str(out),
                             "--base-url", server.base_url, "--engine", "ray", *extra],
                            env=env, cwd=ROOT, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_requests(server, count: int, proc) -> None:
    while len(server.chat_requests()) < count:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)


def test_ctrl_c_keeps_every_answered_line_and_a_rerun_resumes(server, clean_env, tmp_path, ray_head):
    folder = tmp_path / "many"
    make_images(folder, 40)
    out = tmp_path / "out.jsonl"
    server.default = Reply("slow " * 10, chunk_delay=0.3)  # about 3 s an answer
    proc = _start_each(server, folder, out, clean_env, "--ray-address", ray_head, "--concurrency", "2")
    _wait_for_requests(server, 6, proc)  # at least one batch of two answered, more asked
    time.sleep(2)  # the answered batch reaches the driver (a settle, not a measure)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    kept = lines(out)
    assert len(kept) >= 2 and all(line["answer"] == "slow " * 10 for line in kept), stderr
    assert f"{len(kept)} done".encode() in stderr
    server.default = Reply("ok")
    asked = len(server.chat_requests())
    again = subprocess.run([sys.executable, "-m", "mmcli", "ask", "--each", str(folder), "read", "-o", str(out),
                            "--base-url", server.base_url, "--engine", "ray", "--ray-address", ray_head],
                           env=clean_env, cwd=ROOT, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{40 - len(kept)} done, 0 failed, {len(kept)} already done".encode() in again.stderr
    assert len(server.chat_requests()) - asked == 40 - len(kept) and len(lines(out)) == 40


def test_a_batch_is_written_while_the_next_one_is_answered(server, clean_env, tmp_path, ray_head):
    """Ray's iter_rows held a block back until the next one was ready: a batch's lines waited for the next batch,
    and a Ctrl-C meanwhile lost them. Here the second batch never ends, yet the first one's lines are kept."""
    folder = tmp_path / "many"
    make_images(folder, 8)
    out = tmp_path / "out.jsonl"
    server.script(Reply("first"), Reply("first"))
    server.default = Reply("late", delay=600)
    proc = _start_each(server, folder, out, clean_env, "--ray-address", ray_head, "--concurrency", "2")
    deadline = time.monotonic() + 120  # a deadline for the run to get there, far below the second batch's 600 s
    while not out.exists() or out.read_bytes().count(b"\n") < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
        time.sleep(0.1)
    assert server.in_flight == 2 and len(server.chat_requests()) == 4  # the second batch is still being answered
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert [line["answer"] for line in lines(out)] == ["first", "first"] and b"2 done" in stderr


@pytest.mark.parametrize("address", ["[::1", "host:port"])
def test_a_malformed_address_is_one_clear_error(mmcli, server, tmp_path, address):
    make_images(tmp_path / "album", 1)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray",
                   "--ray-address", address)
    assert_clean_error(run, 2, "not a Ray address")
    assert "hint: give the head's HOST:6379" in run.stderr
    assert not server.chat_requests() and not (tmp_path / "o.jsonl").exists()


def _kill_control(head_pid: int) -> int:
    """kill -9 the GCS and the raylet of the Ray started in session head_pid; how many were killed."""
    killed = 0
    for pid in [int(name) for name in os.listdir("/proc") if name.isdigit()]:
        try:
            if os.getsid(pid) != head_pid:
                continue
            program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if program.endswith(("gcs_server", "raylet")):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except OSError:
            continue
    return killed


def test_a_cluster_that_goes_away_is_the_workers_error_with_the_lines_kept(server, clean_env, tmp_path):
    from tests.support.scripted_server import free_port

    folder = tmp_path / "many"
    make_images(folder, 30)
    out = tmp_path / "out.jsonl"
    port = free_port()
    env = dict(clean_env, PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"))
    head = start_head(env, port)
    try:
        server.default = Reply("slow " * 10, chunk_delay=0.3)
        proc = _start_each(server, folder, out, env, "--ray-address", f"127.0.0.1:{port}", "--concurrency", "2")
        while not out.exists() or out.read_bytes().count(b"\n") < 2:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        assert _kill_control(head.pid) == 2
        _, stderr = proc.communicate(timeout=120)
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    assert proc.returncode == 8, stderr
    assert b"mmcli: error: Ray's workers stopped" in stderr and b"stopped answering" in stderr
    assert b"run the same command again" in stderr
    assert len(lines(out)) >= 2


def _wait_for_port(port: int, head) -> None:
    import socket

    while True:
        assert head.poll() is None, "the Ray head did not start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)


def test_token_mode_without_a_token_is_one_clear_error(mmcli, server, tmp_path, ray_head):
    """RAY_AUTH_MODE=token and no token anywhere: Ray raises its AuthenticationError before connecting."""
    make_images(tmp_path / "album", 1)
    run = run_each(mmcli, server, "ask", tmp_path / "album", tmp_path / "o.jsonl", "--engine", "ray",
                   "--ray-address", ray_head, env={"RAY_AUTH_MODE": "token"})
    assert_clean_error(run, 2, "cannot reach Ray", "no authentication token was found")
    assert "hint: put the cluster's token in RAY_AUTH_TOKEN" in run.stderr
    assert not server.chat_requests() and not (tmp_path / "o.jsonl").exists()


def test_joining_a_token_cluster_needs_token_mode_and_its_token(mmcli, server, clean_env, tmp_path):
    """A head started by `ray start --head` with a token (here in its ~/.ray/auth_token, as `ray get-auth-token
    --generate` leaves it): a client that names its address sends the token only with RAY_AUTH_MODE=token."""
    from tests.support.scripted_server import free_port

    make_images(tmp_path / "album", 1)
    port = free_port()
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 32)
    env = dict(clean_env, PYTHONPATH=str(ROOT), HOME=str(home))
    head = start_head(env, port, cpus=1)  # no RAY_AUTH_MODE: Ray turns token mode on as it finds the token
    runs = {}
    try:
        _wait_for_port(port, head)
        for name, extra in {"no mode": {}, "a token, no mode": {"RAY_AUTH_TOKEN": "a" * 32},
                            "mode, another token": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "b" * 32},
                            "no mode, --debug": {}, "mode and token": {"RAY_AUTH_MODE": "token"}}.items():
            runs[name] = subprocess.run(
                [sys.executable, "-m", "mmcli", "ask", "--each", str(tmp_path / "album"), "read", "-o",
                 str(tmp_path / f"{name}.jsonl"), "--base-url", server.base_url, "--engine", "ray", "--ray-address",
                 f"127.0.0.1:{port}", *(["--debug"] if "--debug" in name else [])], env=dict(env, **extra), cwd=ROOT,
                capture_output=True, text=True, timeout=300)
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    for name, why in (("no mode", "asks for an authentication token"), ("a token, no mode", "asks for an auth"),
                      ("mode, another token", "refused the authentication token")):
        run = runs[name]
        assert_clean_error(Run(run.returncode, run.stdout, run.stderr), 2, "cannot start or reach Ray", why)
        assert "RAY_AUTH_TOKEN" in run.stderr and "ray get-auth-token" in run.stderr
        # mmcli's error and hint alone: none of Ray's own lines (its C++ client's InvalidAuthToken, a line a second),
        # and no address but the one given (Ray's own message named the head's internal address)
        assert [line.split(":")[0] for line in run.stderr.splitlines()] == ["mmcli", "hint"], run.stderr
        assert re.findall(r"[\w.-]+:\d{2,5}\b", run.stderr.splitlines()[0]) == [f"127.0.0.1:{port}"], run.stderr
        assert not (tmp_path / f"{name}.jsonl").exists()
    assert "RAY_AUTH_MODE=token" in runs["no mode"].stderr
    debug = runs["no mode, --debug"]  # Ray's own lines, kept while it tried to join, shown with --debug
    assert debug.returncode == 2 and "gcs_client.cc" in debug.stderr and "InvalidAuthToken" in debug.stderr
    joined = runs["mode and token"]
    assert joined.returncode == 0, joined.stderr
    assert [line["answer"] for line in lines(tmp_path / "mode and token.jsonl")] == ["ok"]
    assert len(server.chat_requests()) == 1  # the refused runs sent nothing
