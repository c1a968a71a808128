"""mmcli batch submit / fetch / collect never write into their inputs, never start a part twice, and never call
a batch without answers a success: against a local Batch API whose batches run on a real local chat server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, assert_clean_error
from tests.support.scripted_server import Reply
from tests.test_batch_export import run_batch_file
from tests.test_provider_batches import KEY, MODEL, export, manifest


def test_fetch_and_collect_refuse_every_input_before_downloading(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    photo = sorted((tmp_path / "album").iterdir())[0]
    before, sent = photo.read_bytes(), len(api.requests)
    for target, what in [(photo, "refusing to write into an input"),
                         (path, "refusing to write into the export file"),
                         (tmp_path / "requests.manifest.json", "refusing to write into the export manifest"),
                         (tmp_path / "requests.output.jsonl", "refusing to write into a batch output file"),
                         (tmp_path / "requests.merge.jsonl", "refusing to write into the merge file")]:
        run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", target, env=KEY)
        assert_clean_error(run, 2, what)
    assert photo.read_bytes() == before and len(api.requests) == sent  # refused before anything was asked
    fetched = mmcli("batch", "fetch", path, "--base-url", api.base_url, env=KEY)
    assert fetched.code == 0, fetched.stderr
    link = tmp_path / "another-name.png"
    link.hardlink_to(photo)
    run = mmcli("batch", "collect", path, tmp_path / "requests.output.jsonl", "-o", link)
    assert_clean_error(run, 2, "refusing to write into an input")
    assert photo.read_bytes() == before


def test_a_merge_file_never_writes_into_the_export_it_came_from(mmcli, server, tmp_path):
    from tests.support.pdfs import text_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    text_pdf(docs / "a.pdf", 3)
    doc = tmp_path / "doc.jsonl"
    assert mmcli("docqa", "--each", docs, "who?", "--pages-per-request", "2", "--export", "openai-batch", doc,
                 *MODEL).code == 0
    output = tmp_path / "out.jsonl"
    run_batch_file(server, doc, output)
    run = mmcli("batch", "collect", doc, output, "-o", tmp_path / "res.jsonl")
    assert_clean_error(run, 8, "1 job(s) are not done")
    merge_file = tmp_path / "doc.merge.jsonl"
    for step in (f"mmcli batch submit {merge_file}", f"mmcli batch fetch {merge_file}",
                 f"mmcli batch collect {merge_file}"):
        assert step in run.stderr  # the three ways to run the merge step
    server.script(Reply("merged"))
    merge_out = tmp_path / "merge-out.jsonl"
    run_batch_file(server, merge_file, merge_out)
    before = doc.read_bytes(), (tmp_path / "doc.manifest.json").read_bytes()
    for target in (doc, tmp_path / "doc.manifest.json", docs / "a.pdf"):
        run = mmcli("batch", "collect", merge_file, merge_out, "-o", target)
        assert_clean_error(run, 2, "refusing to write into")
    run = mmcli("batch", "collect", doc, output, "-o", merge_file)  # it would be replaced by the merge lines
    assert_clean_error(run, 2, "refusing to write into the merge file")
    assert (doc.read_bytes(), (tmp_path / "doc.manifest.json").read_bytes()) == before
    assert json.loads((tmp_path / "doc.merge.manifest.json").read_text())["parent"] == str(doc)


def test_a_create_that_times_out_is_sent_once_and_found_again(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    api.hold_create = 30  # the batch is made, the answer comes too late
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, "--timeout", "1", env=KEY)
    api.release.set()
    assert_clean_error(run, 6, "no answer in time")
    assert api.creates == 1 and len(api.batches) == 1  # no retry: one batch, billed once
    entry = manifest(path)["provider_batches"]["requests.jsonl"]
    assert entry["batch_id"] is None and entry["input_file_id"] in api.files
    (batch_id, batch), = api.batches.items()
    assert batch["metadata"] == {"mmcli_export": "requests.jsonl", "mmcli_submit": manifest(path)["submit_id"]}

    again = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert again.code == 0, again.stderr
    assert f"found its batch {batch_id}" in again.stderr
    assert api.creates == 1 and len(api.batches) == 1
    assert manifest(path)["provider_batches"]["requests.jsonl"]["batch_id"] == batch_id
    fetched = mmcli("batch", "fetch", path, "--base-url", api.base_url, env=KEY)
    assert fetched.code == 0, fetched.stderr
    assert len(fetched.stdout.splitlines()) == 2


def test_a_server_that_cannot_list_batches_is_not_sent_a_second_create(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    api.hold_create = 30
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, "--timeout", "1", env=KEY).code == 6
    api.release.set()
    api.replies["list"] = (404, "application/json", b'{"error": {"message": "no such route"}}')
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 2, "cannot tell whether an interrupted submit started this part")
    assert f"mmcli_submit={manifest(path)['submit_id']}" in run.stderr
    assert api.creates == 1


def test_a_refused_create_leaves_nothing_to_look_for(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    api.replies["create"] = (400, "application/json", b'{"error": {"message": "bad input file"}}')
    assert_clean_error(mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY), 4, "bad input file")
    assert manifest(path)["provider_batches"] == {}
    del api.replies["create"]
    api.replies["list"] = (404, "application/json", b'{"error": {"message": "no such route"}}')
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0  # no list needed
    assert len(api.batches) == 1


def test_an_interrupted_create_is_found_again_not_sent_twice(mmcli, clean_env, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    api.hold_create = 60
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "batch", "submit", str(path), "--base-url", api.base_url],
                            env=dict(clean_env, **KEY), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert api.created.wait(60)  # the provider has made the batch; its answer has not been sent
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        api.release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert manifest(path)["provider_batches"]["requests.jsonl"]["input_file_id"] in api.files
    again = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert again.code == 0, again.stderr
    assert api.creates == 1 and len(api.batches) == 1
    assert manifest(path)["provider_batches"]["requests.jsonl"]["batch_id"] == next(iter(api.batches))


def test_a_resubmit_after_a_failed_batch_is_not_mistaken_for_an_interrupted_one(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    api.outcomes = ["failed"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    assert mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY).code == 8
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    assert api.creates == 2  # the failed one is listed by the provider, but it is not this upload's


def test_a_completed_batch_without_files_names_the_jobs_without_an_answer(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    api.outcomes = ["empty"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    results = tmp_path / "r.jsonl"
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert_clean_error(run, 8, "2 job(s) are not done", "no answer for", "img000.png")
    assert "gave no output or error file" in run.stderr


def test_fetch_checks_the_results_place_before_downloading(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    sent = len(api.requests)
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", tmp_path / "nodir" / "r.jsonl", env=KEY)
    assert_clean_error(run, 2, "folder does not exist")
    assert len(api.requests) == sent and not (tmp_path / "requests.output.jsonl").exists()
    waited = mmcli("batch", "submit", path, "--base-url", api.base_url, "--wait", "-o", tmp_path, env=KEY)
    assert_clean_error(waited, 2, "is a directory")
    assert len(api.requests) == sent


def test_an_unknown_batch_gets_a_batch_hint(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    api.batches.clear()  # the provider forgot it (or another account asks)
    run = mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(run, 4, "404")
    assert "does not know batch" in run.stderr and "--model" not in run.stderr


def test_openai_account_variables_follow_the_openai_key_rule(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    account = {"OPENAI_ORG_ID": "org-private", "OPENAI_PROJECT_ID": "proj-private"}
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env={**KEY, **account}).code == 0
    assert api.requests and all("openai-organization" not in h and "openai-project" not in h
                                for _, _, h in api.requests)
    api.requests.clear()
    mine = {**KEY, **account, "OPENAI_BASE_URL": api.base_url}  # this host is the one OpenAI's variables name
    assert mmcli("batch", "status", path, "--base-url", api.base_url, env=mine).code == 0
    assert api.requests[-1][2].get("openai-organization") == "org-private"
    assert api.requests[-1][2].get("openai-project") == "proj-private"


@pytest.mark.parametrize("text", ["profiles = 3", "[profiles.x]\nbase_url = 'http://h/v1'\nframe_limit = 0",
                                  "log = 'yes'", "vllm_python = 3"])
def test_a_config_file_error_has_a_hint(mmcli, tmp_path, text):
    config = tmp_path / "config.toml"
    config.write_text(text)
    run = mmcli("batch", "status", tmp_path / "r.jsonl", env={"MMCLI_CONFIG": str(config)})
    assert_clean_error(run, 2, "invalid config file")
    assert "hint: fix the file" in run.stderr
