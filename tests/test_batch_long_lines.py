"""A line of gigabytes in a batch runner's output (or a results file) is never read whole: its job fails
with the reason, the other lines are collected. The long lines are sparse files (holes read as zeros), so
they take no disk space; a real `mmcli` process runs, and its peak memory is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Run, assert_clean_error
from tests.test_batch_each import lines
from tests.test_batch_export import answered_export

HUGE = (2 << 30) + 5  # a 2 GiB line, no newline in it
LONG = 3 << 30  # long enough to tell a process that held it from one that did not
MOST_RSS_KB = 1 << 20  # 1 GiB, far below either: the process never held the line (it peaks at 0.2 to 0.7 GiB)


def append_sparse_line(path: Path, head: bytes, size: int, end: bytes) -> None:
    """Append `head`, then zeros up to `size` bytes (a hole: no disk used), then `end` and a newline."""
    with open(path, "ab") as handle:
        handle.write(head)
        handle.truncate(handle.tell() + size - len(head) - len(end))
    with open(path, "ab") as handle:
        handle.write(end + b"\n")


def run_measured(env: dict, *args) -> tuple[Run, int]:
    """`python -m mmcli ARGS` in a new process; (the run, its peak resident memory in KiB)."""
    code = ("import resource, runpy, sys\n"
            "sys.argv = ['mmcli', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('mmcli', run_name='__main__')\n"
            "finally:\n"
            "    sys.stderr.write(f'\\nmaxrss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\n")
    run = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    stderr, _, rss = run.stderr.rpartition("\nmaxrss=")
    return Run(run.returncode, run.stdout, stderr), int(rss)


@pytest.fixture
def exported(mmcli, server, tmp_path):
    """An export of three jobs and the batch runner's output for it: (export, [output lines])."""
    return answered_export(mmcli, server, tmp_path)


@pytest.mark.parametrize("where, size", [("head", HUGE), ("tail", LONG)])
def test_a_2gb_output_line_fails_its_job_and_the_others_are_collected(exported, tmp_path, clean_env, where, size):
    export, kept = exported
    output = tmp_path / "huge.jsonl"
    output.write_text(kept[0] + "\n")
    custom_id = json.loads(kept[1])["custom_id"]
    named = f'"custom_id": "{custom_id}"'.encode()
    head = b'{"id": "batch_req_1", ' + (named + b', ' if where == "head" else b"") + b'"response": {"body": "'
    end = b'"}' + (b", " + named if where == "tail" else b"") + b"}"
    append_sparse_line(output, head, size, end)
    with open(output, "a") as handle:
        handle.write(kept[2] + "\n")
    results = tmp_path / "res.jsonl"
    run, rss = run_measured(clean_env, "batch", "collect", export, output, "-o", results)
    assert_clean_error(run, 8, "1 job(s) are not done")
    assert "2 done, 1 failed" in run.stderr
    failed = [r for r in lines(results) if "error" in r]
    assert len(failed) == 1 and failed[0]["error"]["exit_code"] == 5
    assert "the answer is too large" in failed[0]["error"]["message"]
    assert f"{size:,} bytes" in failed[0]["error"]["message"] and "line 2" in failed[0]["error"]["message"]
    assert rss < MOST_RSS_KB, rss


def test_a_long_line_without_a_custom_id_is_a_skipped_line(mmcli, exported, tmp_path):
    export, kept = exported
    output = tmp_path / "huge.jsonl"
    output.write_text(kept[0] + "\n" + kept[2] + "\n")
    append_sparse_line(output, b'{"response": "', (64 << 20) + (2 << 20), b'"}')  # just over the cap
    run = mmcli("batch", "collect", export, output, "-o", tmp_path / "res.jsonl")
    assert_clean_error(run, 5, "not answers", "too long to read", "line 3")
    assert "2 done, 0 failed" in run.stderr and "1 with no output yet" in run.stderr


def test_a_3gb_line_in_the_results_file_is_a_torn_line(exported, tmp_path, clean_env):
    export, kept = exported
    output = tmp_path / "answers.jsonl"
    output.write_text("\n".join(kept) + "\n")
    results = tmp_path / "res.jsonl"
    append_sparse_line(results, b'{"id": "', LONG, b'"}')
    run, rss = run_measured(clean_env, "batch", "collect", export, output, "-o", results)
    assert run.code == 0, run.stderr
    assert "3 done, 0 failed" in run.stderr
    assert rss < MOST_RSS_KB, rss
