"""Hostile Batch API replies, damaged manifests, bad and big output files: clean errors, nothing recorded that
is not a real id, the good answers kept. Against a local Batch API on 127.0.0.1 whose chat answers are real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SECRET_KEY, assert_clean_error
from tests.support.batch_api import DROP, BatchAPI
from tests.test_batch_each import lines
from tests.test_provider_batches import KEY, export, manifest

JSON, HTML = "application/json", "text/html"


@pytest.mark.parametrize("body, kind", [(b"\x1b]0;PWN\x07not json", JSON), (b"<html>hi</html>", HTML),
                                        (b'{"object": "file"}', JSON), (b'{"id": null}', JSON), (b"[]", JSON),
                                        (b'{"id": "../../etc/passwd"}', JSON)])
def test_a_bad_upload_reply_is_exit_5_and_no_batch_is_created(mmcli, api, tmp_path, body, kind):
    path = export(mmcli, tmp_path, 1)
    api.replies["upload"] = (200, kind, body)
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 5, "bad reply from the server", "upload")
    assert "hint: " in run.stderr and "\x1b" not in run.output
    assert api.creates == 0 and manifest(path).get("provider_batches") == {}


@pytest.mark.parametrize("body, kind", [(b"[]", JSON), (b'{"object": "batch", "status": "validating"}', JSON),
                                        (b"<html>", HTML), (b'{"id": "batch-9"}', JSON)])
def test_a_bad_create_reply_records_only_the_upload(mmcli, api, tmp_path, body, kind):
    path = export(mmcli, tmp_path, 1)
    api.replies["create"] = (200, kind, body)
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 5, "bad reply from the server")
    entry = manifest(path)["provider_batches"]["requests.jsonl"]
    assert entry["batch_id"] is None and entry["input_file_id"] in api.files
    status = mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(status, 2, "was not submitted")
    del api.replies["create"]
    again = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert again.code == 0 and "None" not in again.output, again.stderr
    assert len(api.batches) == 1
    assert manifest(path)["provider_batches"]["requests.jsonl"]["batch_id"] == next(iter(api.batches))


@pytest.mark.parametrize("hostile", [{"retrieve": (200, HTML, b"<html>")}, {"errors": {"data": "notalist"}},
                                     {"status": DROP}, {"status": None}, {"output_file_id": 7},
                                     {"id": "batch-other"}])
def test_a_bad_batch_reply_is_exit_5_for_status_and_fetch(mmcli, api, tmp_path, hostile):
    path = export(mmcli, tmp_path, 1)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    if "retrieve" in hostile:
        api.replies.update(hostile)
    else:
        api.patch = hostile
    for command in ("status", "fetch"):
        run = mmcli("batch", command, path, "--base-url", api.base_url, env=KEY)
        assert_clean_error(run, 5, "bad reply from the server")
        assert "None" not in run.output and "hint: " in run.stderr


@pytest.mark.parametrize("damage", [{"provider_batches": [1]}, {"provider_batches": {"requests.jsonl": {}}},
                                    {"provider_batches": {"requests.jsonl": {"base_url": "x", "batch_id": 5}}},
                                    {"files": [1]}, {"files": "requests.jsonl"}, {"submit_id": 3}])
def test_a_damaged_manifest_is_exit_2_with_a_hint(mmcli, api, tmp_path, damage):
    path = export(mmcli, tmp_path, 1)
    manifest_file = tmp_path / "requests.manifest.json"
    manifest_file.write_text(json.dumps({**manifest(path), **damage}))
    for command in ("submit", "status", "fetch"):
        run = mmcli("batch", command, path, "--base-url", api.base_url, env=KEY)
        assert_clean_error(run, 2, "the export manifest is damaged")
        assert "hint: " in run.stderr
    assert api.requests == []
    manifest_file.write_text("{not json")
    run = mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 2, "cannot read the export manifest")
    assert "hint: " in run.stderr


def test_bad_output_lines_are_skipped_and_reported_the_rest_collected(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 3)
    api.outcomes = ["badlines"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    results = tmp_path / "r.jsonl"
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert_clean_error(run, 5, "bad reply from the server", "2 line(s)", "line 1")
    assert len(lines(results)) == 3 and all(r["answer"] for r in lines(results))
    assert run.stderr.count("skipped: ") == 2 and "no custom_id" in run.stderr


def _peak_rss_kib(clean_env, *args: str) -> int:
    """The peak memory of `mmcli ARGS` run in a process of its own (measured by a parent that runs only it)."""
    code = ("import resource, subprocess, sys; "
            "done = subprocess.run([sys.executable, '-m', 'mmcli', *sys.argv[1:]], capture_output=True); "
            "assert done.returncode == 0, done.stderr.decode(); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=clean_env, cwd=ROOT, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return int(proc.stdout)


@pytest.mark.real_process
def test_a_big_output_file_is_streamed_not_held(mmcli, clean_env, server, tmp_path):
    env = dict(clean_env, **KEY)
    peaks = []
    for pad_mb in (0, 160):
        where = tmp_path / f"pad{pad_mb}"
        where.mkdir()
        with BatchAPI(server.root_url, api_key=SECRET_KEY) as api:
            api.pad_mb = pad_mb
            path = export(mmcli, where, 2)
            assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
            peaks.append(_peak_rss_kib(env, "batch", "fetch", str(path), "--base-url", api.base_url,
                                       "-o", str(where / "r.jsonl")))
            assert len(lines(where / "r.jsonl")) == 2
            assert (where / "requests.output.jsonl").stat().st_size > pad_mb << 20
    print(f"peak RSS: plain output {peaks[0] >> 10} MiB, with 160 MiB more output {peaks[1] >> 10} MiB")
    assert peaks[1] - peaks[0] < 80 << 10  # the 160 MiB never in memory at once
