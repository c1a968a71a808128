"""--each against a real local HTTP server: results lines, resume, failures, Ctrl-C, rate limits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import assert_clean_error
from tests.support import media
from tests.support.scripted_server import Hang, Reply, Status, vllm_error

ROOT = Path(__file__).parent.parent


def make_images(folder: Path, count: int, start: int = 0) -> list[Path]:
    """`count` small PNGs, each different (so each has its own job id)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        path = folder / f"img{n:03d}.png"
        Image.new("RGB", (80 + n, 60), (n * 5 % 256, 90, 160)).save(path)
        paths.append(path)
    return paths


def lines(path: Path) -> list[dict]:
    """Every line of a results file, each required to be one whole JSON object."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.decode().splitlines()]


def each(mmcli, server, *args, env=None):
    return mmcli("ask", "--each", *args, "--base-url", server.base_url, env=env)


def test_each_writes_one_line_per_input_and_a_summary(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 5)
    results = tmp_path / "results.jsonl"
    run = each(mmcli, server, tmp_path / "album", "caption this", "-o", results, "--concurrency", "3")
    assert run.code == 0, run.stderr
    found = lines(results)
    assert sorted(Path(r["sources"][0]).name for r in found) == [f"img{n:03d}.png" for n in range(5)]
    assert all(r["answer"] == "ok" and r["command"] == "ask" and r["verified"] is True for r in found)
    assert all(r["plan"]["totals"]["visual_tokens"] > 0 for r in found)
    assert len({r["id"] for r in found}) == 5
    assert "5 done, 0 failed, 0 already done" in run.stderr
    assert run.stderr.count("] done: ") == 5  # one status line per job when stderr is not a terminal
    assert len(server.chat_requests()) == 5
    assert all(len(r.json["messages"][-1]["content"]) == 2 for r in server.chat_requests())  # one image each


def test_without_output_file_lines_go_to_stdout(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 2)
    run = each(mmcli, server, tmp_path / "album", "caption")
    assert run.code == 0, run.stderr
    assert [json.loads(line)["answer"] for line in run.stdout.splitlines()] == ["ok", "ok"]


def test_failed_job_then_rerun_sends_only_what_is_missing(mmcli, server, tmp_path):
    album = tmp_path / "album"
    make_images(album, 4)
    results = tmp_path / "results.jsonl"
    server.script(Reply("a"), Status(400, vllm_error(400, "bad image")), Reply("c"), Reply("d"))
    first = each(mmcli, server, album, "caption", "-o", results, "-j", "1")
    assert_clean_error(first, 8, "1 of 4 job(s) failed")
    failed = [r for r in lines(results) if "error" in r]
    assert len(failed) == 1 and failed[0]["error"]["exit_code"] == 4 and "bad image" in failed[0]["error"]["message"]
    assert "3 done, 1 failed, 0 already done" in first.stderr

    make_images(album, 2, start=4)  # two new photos: only they are sent
    second = each(mmcli, server, album, "caption", "-o", results, "-j", "2")
    assert second.code == 8 and "2 done, 0 failed, 3 already done, 1 failed before" in second.stderr
    assert len(server.chat_requests()) == 6

    third = each(mmcli, server, album, "caption", "-o", results, "--retry-failed")
    assert third.code == 0, third.stderr
    assert len(server.chat_requests()) == 7
    assert server.chat_requests()[-1].json == server.chat_requests()[1].json  # the failed one, again
    latest = {r["id"]: r for r in lines(results)}
    assert len(latest) == 6 and not any("error" in r for r in latest.values())


def test_changed_prompt_or_option_is_a_new_job(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 2)
    results = tmp_path / "results.jsonl"
    assert each(mmcli, server, tmp_path / "album", "caption", "-o", results).code == 0
    assert each(mmcli, server, tmp_path / "album", "caption", "-o", results, "--max-tokens", "9").code == 0
    assert each(mmcli, server, tmp_path / "album", "caption", "-o", results, "--max-tokens", "9").code == 0
    assert len(server.chat_requests()) == 4
    assert len({r["id"] for r in lines(results)}) == 4


def test_corrupt_image_among_40_is_a_failed_line(mmcli, server, tmp_path):
    album = tmp_path / "album"
    make_images(album, 39)
    media.make_truncated_jpeg(album, "img017b.jpg")
    results = tmp_path / "results.jsonl"
    run = each(mmcli, server, album, "caption", "-o", results, "-j", "8")
    assert_clean_error(run, 8, "1 of 40 job(s) failed")
    found = lines(results)
    assert len(found) == 40
    bad = [r for r in found if "error" in r]
    assert [Path(r["sources"][0]).name for r in bad] == ["img017b.jpg"]
    assert bad[0]["error"]["exit_code"] == 3
    assert len(server.chat_requests()) == 39


def test_429_with_retry_after_pauses_every_worker(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 9)
    server.script(Status(429, headers={"Retry-After": "1"}), *[Reply("fine", chunk_delay=0.05)] * 2)
    run = each(mmcli, server, tmp_path / "album", "caption", "-j", "3")
    assert run.code == 0, run.stderr
    requests = server.chat_requests()
    assert len(requests) == 10  # nine jobs and the one retry
    limited_at = requests[0].received_at
    later = requests[3:]  # the first three were on the wire before the 429 came back
    assert all(r.received_at >= limited_at + 0.95 for r in later), [r.received_at - limited_at for r in later]


def _start(args: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmcli", *map(str, args)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_lines(path: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path}")


def test_ctrl_c_takes_no_new_jobs_and_leaves_whole_lines(server, clean_env, tmp_path):
    make_images(tmp_path / "album", 30)
    results = tmp_path / "results.jsonl"
    server.default = Reply("a slow answer " * 4, chunk_delay=0.03)
    proc = _start(["ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "3",
                   "--base-url", server.base_url], clean_env)
    _wait_for_lines(results, 3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert b"stopping: no new jobs" in stderr and b"mmcli: interrupted" in stderr
    found = lines(results)
    assert 3 <= len(found) < 30
    assert len(server.chat_requests()) <= len(found) + 3  # nothing new after Ctrl-C but what was in flight
    assert all(r["answer"] == "a slow answer " * 4 for r in found)


def test_second_ctrl_c_aborts_at_once(server, clean_env, tmp_path):
    make_images(tmp_path / "album", 6)
    results = tmp_path / "results.jsonl"
    server.script(Reply("quick"), Reply("quick"))
    server.default = Hang(60)
    proc = _start(["ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "2",
                   "--base-url", server.base_url], clean_env)
    _wait_for_lines(results, 2)
    while len(server.chat_requests()) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - started < 5
    assert [r["answer"] for r in lines(results)] == ["quick", "quick"]


def test_batch_options_need_each(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "-o", tmp_path / "r.jsonl", "--base-url", server.base_url)
    assert_clean_error(run, 2, "-o works with --each")
    run = mmcli("ask", "--each", photo, "q", "--dry-run", "--base-url", server.base_url)
    assert_clean_error(run, 2, "--dry-run")
    empty = tmp_path / "empty"
    empty.mkdir()
    run = mmcli("ask", "--each", empty, "q", "--base-url", server.base_url)
    assert_clean_error(run, 2, "no inputs to run")
    assert server.requests == []


def test_profile_sets_default_concurrency(mmcli, server, tmp_path, clean_env):
    config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.farm]\nbase_url = "{server.base_url}"\nconcurrency = 1\n')
    make_images(tmp_path / "album", 3)
    server.default = Reply("one two three four five six", chunk_delay=0.05)
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--profile", "farm")
    assert run.code == 0, run.stderr
    times = sorted(r.received_at for r in server.chat_requests())
    assert times[1] - times[0] >= 0.25 and times[2] - times[1] >= 0.25  # one at a time


@pytest.mark.parametrize("command", ["docqa", "detect"])
def test_docqa_and_detect_each(mmcli, server, tmp_path, command):
    make_images(tmp_path / "album", 2)
    server.default = Reply('[{"bbox_2d": [10, 10, 40, 40], "label": "thing"}]')
    out = tmp_path / "out"
    extra = ["-o", out] if command == "detect" else ["-o", tmp_path / "results.jsonl"]
    run = mmcli(command, "--each", tmp_path / "album", "the thing", *extra, "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    found = lines(out / "results.jsonl" if command == "detect" else tmp_path / "results.jsonl")
    assert len(found) == 2
    if command == "detect":
        entry = found[0]["inputs"][0]
        assert entry["detections"][0]["label"] == "thing" and entry["original_size"][1] == 60
    else:
        assert found[0]["answer"].startswith("[{") and found[0]["mode"] == "single"


@pytest.mark.parametrize("concurrency", [2, 4])
def test_the_server_never_sees_more_than_concurrency_at_once(mmcli, server, tmp_path, concurrency):
    """The reference for --engine ray's in-flight limit: a slow server, many photos, the peak it saw."""
    make_images(tmp_path / "album", 20)
    server.default = Reply("ok", delay=0.3)
    run = each(mmcli, server, tmp_path / "album", "caption", "-o", tmp_path / "r.jsonl",
               "--concurrency", str(concurrency))
    assert run.code == 0, run.stderr
    assert len(server.chat_requests()) == 20
    assert server.peak_in_flight == concurrency  # never more, and with 20 slow jobs it gets there


def test_sigterm_ends_a_run_as_ctrl_c_does(server, clean_env, tmp_path):
    """`kill` (SIGTERM) takes no new jobs, keeps the lines written and ends with the summary, as Ctrl-C does;
    before, the process died at once (exit 143) and the summary and any table were never printed."""
    make_images(tmp_path / "album", 30)
    results = tmp_path / "results.jsonl"
    server.default = Reply("a slow answer " * 4, chunk_delay=0.03)
    proc = _start(["ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "3",
                   "--base-url", server.base_url], clean_env)
    _wait_for_lines(results, 3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert b"stopping: no new jobs" in stderr and b"mmcli: interrupted" in stderr and b"Traceback" not in stderr
    found = lines(results)
    assert 3 <= len(found) < 30
    assert len(server.chat_requests()) <= len(found) + 3  # nothing new after the signal but what was in flight
