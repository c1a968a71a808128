"""mmcli batch submit / status / fetch against hostile conditions: two submits at once, a results file at a
download's name, another endpoint, absurd request counts, an edited manifest; against a local Batch API."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, SECRET_KEY, assert_clean_error
from tests.support.batch_api import BatchAPI
from tests.test_provider_batches import KEY, export, manifest


def _submit_process(clean_env, path, api) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmcli", "batch", "submit", str(path), "--base-url", api.base_url],
                            env=dict(clean_env, **KEY), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_submits_at_once_start_one_batch(clean_env, api, tmp_path, mmcli):
    path = export(mmcli, tmp_path, 2)
    api.hold_create = 60  # the first submit is inside its create when the second one starts
    first = _submit_process(clean_env, path, api)
    second = None
    heard: list[str] = []
    try:
        assert api.created.wait(60)
        second = _submit_process(clean_env, path, api)
        reader = threading.Thread(target=lambda: heard.append(second.stderr.readline()), daemon=True)
        reader.start()
        for _ in range(600):  # until the second submit says it waits, or (unlocked) has sent its own create
            if heard or api.creates > 1:
                break
            time.sleep(0.1)
        api.release.set()
        out1, err1 = first.communicate(timeout=60)
        out2, err2 = second.communicate(timeout=60)
        reader.join(60)
    finally:
        api.release.set()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert api.creates == 1 and len(api.batches) == 1, (err1, heard, err2)  # billed once
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    assert "waiting for another mmcli run" in heard[0]
    batch_id = next(iter(api.batches))
    assert f"already submitted as {batch_id}" in err2
    assert manifest(path)["provider_batches"]["requests.jsonl"]["batch_id"] == batch_id


RESERVED = ["requests.earlier-2.output.jsonl", "requests.earlier-17.output.jsonl", "requests.resubmit-3.jsonl",
            "requests.error.jsonl", "requests.output.jsonl"]


@pytest.mark.parametrize("name", RESERVED)
def test_fetch_and_collect_refuse_every_reserved_name_existing_or_not(mmcli, api, tmp_path, name):
    path = export(mmcli, tmp_path, 1)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    sent = len(api.requests)
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", tmp_path / name, env=KEY)
    assert_clean_error(run, 2, "refusing to write into a batch output file", name)
    assert len(api.requests) == sent and not (tmp_path / name).exists()
    (tmp_path / "out.jsonl").write_text("")
    run = mmcli("batch", "collect", path, tmp_path / "out.jsonl", "-o", tmp_path / name)
    assert_clean_error(run, 2, "refusing to write into a batch output file")
    other = tmp_path / "sub"
    other.mkdir()
    assert mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", other / name, env=KEY).code == 0


def test_a_resubmit_never_replaces_a_file_it_did_not_download(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 4)
    api.outcomes = ["expired", "expired", "completed"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    results = tmp_path / "r.jsonl"
    assert mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY).code == 8
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0  # earlier-1 saved
    mine = tmp_path / "requests.earlier-2.output.jsonl"  # a user's results, where the next retire saves
    mine.write_bytes(results.read_bytes())
    before = mine.read_bytes()
    assert mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY).code == 8  # the second expired
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 2, "refusing to replace a file that is not a batch output")
    assert mine.read_bytes() == before and api.creates == 2
    mine.unlink()
    again = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert again.code == 0 and "1 of 4 request(s)" in again.stderr, again.stderr
    assert '"custom_id"' in mine.read_text()


def test_submit_refuses_another_endpoint_as_status_and_fetch_do(mmcli, server, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    api.outcomes = ["expired"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    with BatchAPI(server.root_url, api_key=SECRET_KEY) as other:
        for command in ("submit", "status", "fetch"):
            run = mmcli("batch", command, path, "--base-url", other.base_url, env=KEY)
            assert_clean_error(run, 2, "submitted to another endpoint")
        assert other.requests == []
    assert mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY).code == 8  # expired: now known
    with BatchAPI(server.root_url, api_key=SECRET_KEY) as other:
        run = mmcli("batch", "submit", path, "--base-url", other.base_url, env=KEY)
        assert_clean_error(run, 2, "submitted to another endpoint")
        assert other.requests == [] and api.creates == 1


@pytest.mark.parametrize("counts", [{"total": 2, "completed": -5, "failed": 0},
                                    {"total": 10 ** 18, "completed": 0, "failed": 0},
                                    {"total": 2, "completed": 2, "failed": 7},
                                    {"total": True, "completed": 0, "failed": -1}])
def test_absurd_request_counts_are_a_bad_reply(mmcli, api, tmp_path, counts):
    path = export(mmcli, tmp_path, 2)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    api.patch = {"request_counts": counts}
    for command in ("status", "fetch"):
        run = mmcli("batch", command, path, "--base-url", api.base_url, env=KEY)
        assert_clean_error(run, 5, "bad reply", "request")
    assert not (tmp_path / "requests.output.jsonl").exists()


@pytest.mark.parametrize("key", ["../evil.jsonl", "/tmp/evil.jsonl", "other.jsonl", "requests-2.jsonl"])
@pytest.mark.parametrize("command", ["submit", "status", "fetch"])
def test_a_batch_under_a_name_that_is_no_part_is_a_damaged_manifest(mmcli, api, tmp_path, key, command):
    path = export(mmcli, tmp_path, 1)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    record = path.with_name("requests.manifest.json")
    data = json.loads(record.read_text())
    data["provider_batches"] = {key: data["provider_batches"]["requests.jsonl"]}
    record.write_text(json.dumps(data))
    sent = len(api.requests)
    run = mmcli("batch", command, path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 2, "the export manifest is damaged", "not the name of a file of the export")
    assert "hint: use the manifest --export wrote" in run.stderr
    assert len(api.requests) == sent and len(api.batches) == 1


def _set_status(path, status) -> None:
    record = path.with_name("requests.manifest.json")
    data = json.loads(record.read_text())
    data["provider_batches"]["requests.jsonl"]["status"] = status
    record.write_text(json.dumps(data))


def test_a_recorded_status_submit_cannot_judge_is_asked_of_the_provider(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    api.outcomes = ["expired", "completed"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    first = manifest(path)["provider_batches"]["requests.jsonl"]["batch_id"]
    _set_status(path, None)  # the batch expired meanwhile; the manifest says nothing of it
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert run.code == 0 and "1 of 2 request(s)" in run.stderr, run.stderr
    recorded = manifest(path)["provider_batches"]["requests.jsonl"]
    assert [e["batch_id"] for e in recorded["earlier"]] == [first] and api.creates == 2
    _set_status(path, "whatever")
    asked = len(api.requests)
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert run.code == 0 and f"already submitted as {recorded['batch_id']}" in run.stderr, run.stderr
    assert ("GET", f"/v1/batches/{recorded['batch_id']}") in [(m, p) for m, p, _ in api.requests[asked:]]
    assert manifest(path)["provider_batches"]["requests.jsonl"]["status"] == "completed" and api.creates == 2
