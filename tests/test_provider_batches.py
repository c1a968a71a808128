"""mmcli batch submit / status / fetch against a local Batch API whose batches run on a real local chat server."""

from __future__ import annotations

import json

from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support.batch_api import BatchAPI
from tests.support.scripted_server import Reply
from tests.test_batch_each import lines, make_images

MODEL = ["--model", "tiny", "--family", "qwen2-vl"]
KEY = {"MMCLI_API_KEY": SECRET_KEY}


def export(mmcli, tmp_path, count: int, *extra: str):
    make_images(tmp_path / "album", count)
    path = tmp_path / "requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", path, *MODEL, *extra)
    assert run.code == 0, run.stderr
    return path


def manifest(path):
    return json.loads(path.with_name(path.name.replace(".jsonl", ".manifest.json")).read_text())


def test_submit_status_fetch_gives_the_lines_of_a_live_run(mmcli, server, api, tmp_path):
    path = export(mmcli, tmp_path, 4)
    run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert run.code == 0, run.stderr
    recorded = manifest(path)["provider_batches"]["requests.jsonl"]
    assert recorded["batch_id"].startswith("batch-") and recorded["input_file_id"] in api.files
    assert api.files[recorded["input_file_id"]] == path.read_bytes()  # every line uploaded as exported
    assert all(h.get("authorization") == f"Bearer {SECRET_KEY}" for _, _, h in api.requests)

    status = mmcli("batch", "status", path, "--base-url", api.base_url, "--json", env=KEY)
    assert status.code == 0, status.stderr
    row = json.loads(status.stdout)["batches"][0]
    assert (row["status"], row["completed"], row["total"]) == ("completed", 4, 4)

    results = tmp_path / "results.jsonl"
    fetched = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert fetched.code == 0, fetched.stderr
    assert "4 done, 0 failed" in fetched.stderr
    assert (tmp_path / "requests.output.jsonl").is_file()

    live = tmp_path / "live.jsonl"
    assert mmcli("ask", "--each", tmp_path / "album", "caption", "-o", live, "--base-url", server.base_url,
                 *MODEL).code == 0
    by_id = {r["id"]: r for r in lines(results)}
    assert len(by_id) == 4
    for record in lines(live):
        mine = by_id[record["id"]]
        assert set(mine) == set(record) - {"seconds"}
        assert {k: mine[k] for k in mine if k != "plan"} == {k: record[k] for k in mine if k != "plan"}
        same = {"items", "visual_tokens", "bytes"}  # request_bytes differ: a batch line has no `stream`
        assert {k: mine["plan"]["totals"][k] for k in same} == {k: record["plan"]["totals"][k] for k in same}
    assert SECRET_KEY not in fetched.output + run.output + status.output

    again = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert again.code == 0, again.stderr
    assert "0 done, 0 failed, 4 already done" in again.stderr
    assert len(lines(results)) == 4  # nothing written twice
    resubmit = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert resubmit.code == 0 and "already submitted" in resubmit.stderr and len(api.batches) == 1


def test_a_failed_batch_says_why_and_a_resubmit_sends_only_it(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 2)
    api.outcomes = ["failed"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    status = mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(status, 8, "did not complete", "The model 'tiny' does not exist")
    assert "failed" in status.stdout
    fetched = mmcli("batch", "fetch", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(fetched, 8, "1 batch(es) did not complete", "line 1")
    assert "mmcli batch submit" in fetched.stderr

    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    assert len(api.batches) == 2  # the failed part went again
    results = tmp_path / "r.jsonl"
    done = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert done.code == 0, done.stderr
    assert len(lines(results)) == 2


def test_an_expired_batch_keeps_what_arrived_and_names_the_rest(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 4)
    api.outcomes = ["expired"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    results = tmp_path / "r.jsonl"
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert_clean_error(run, 8, "did not complete", "expired")
    assert "2 done, 0 failed, 0 already done, 2 with no output yet" in run.stderr
    assert len(lines(results)) == 2 and all(r["answer"] for r in lines(results))


def test_fetch_while_running_then_again_when_done(mmcli, server, tmp_path):
    with BatchAPI(server.root_url, polls=2) as api:
        path = export(mmcli, tmp_path, 2)
        assert mmcli("batch", "submit", path, "--base-url", api.base_url).code == 0
        results = tmp_path / "r.jsonl"
        early = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results)
        assert_clean_error(early, 8, "still running")
        assert "in_progress" in early.stderr and not results.exists()
        mmcli("batch", "status", path, "--base-url", api.base_url)  # the second look: still running
        later = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results)
        assert later.code == 0, later.stderr
        assert len(lines(results)) == 2


def test_submit_wait_polls_then_collects(mmcli, server, tmp_path):
    server.default = Reply("waited for")
    with BatchAPI(server.root_url, polls=2) as api:
        path = export(mmcli, tmp_path, 2)
        run = mmcli("batch", "submit", path, "--base-url", api.base_url, "--wait", "--every", "0.1")
    assert run.code == 0, run.stderr
    assert "in_progress" in run.stderr and "2 done, 0 failed" in run.stderr
    assert [r["answer"] for r in map(json.loads, run.stdout.splitlines())] == ["waited for"] * 2


def test_every_part_of_a_split_export_is_a_batch(mmcli, api, tmp_path):
    import numpy as np
    from PIL import Image

    album = tmp_path / "album"
    album.mkdir()
    noise = np.random.default_rng(7)
    for n in range(3):  # noise does not compress: each line is a good part of a megabyte
        Image.fromarray(noise.integers(0, 255, (700, 900, 3), dtype=np.uint8)).save(album / f"n{n}.png")
    path = tmp_path / "requests.jsonl"
    assert mmcli("ask", "--each", album, "caption", "--export", "openai-batch", path, *MODEL, "--batch-max-mb", "1",
                 "--max-pixels", "2000000").code == 0
    files = manifest(path)["files"]
    assert len(files) > 1
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    assert len(api.batches) == len(files)
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, env=KEY)
    assert run.code == 0, run.stderr
    assert len(run.stdout.splitlines()) == 3


def test_refusals_before_anything_is_sent(mmcli, api, tmp_path):
    path = export(mmcli, tmp_path, 1)
    not_yet = mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(not_yet, 2, "was not submitted")
    assert_clean_error(mmcli("batch", "submit", tmp_path / "none.jsonl", "--base-url", api.base_url, env=KEY),
                       2, "no manifest")
    wrong_key = mmcli("batch", "submit", path, "--base-url", api.base_url, env={"MMCLI_API_KEY": "sk-wrong-key-x"})
    assert_clean_error(wrong_key, 4, "401")
    assert api.batches == {}
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    elsewhere = mmcli("batch", "fetch", path, "--base-url", "http://127.0.0.1:9/v1", env=KEY)
    assert_clean_error(elsewhere, 2, "submitted to another endpoint")


def test_the_python_api_hands_out_an_sdk_client_for_the_same_endpoint_and_key(server, monkeypatch, tmp_path):
    import mmcli

    for name in ("MMCLI_BASE_URL", "MMCLI_PROFILE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("MMCLI_API_KEY", SECRET_KEY)
    sdk = mmcli.Client(base_url=server.base_url, autostart=False).openai()
    assert str(sdk.base_url).rstrip("/") == server.base_url and sdk.api_key == SECRET_KEY
    assert [m.id for m in sdk.models.list()] == server.models
    assert server.requests[-1].headers["authorization"] == f"Bearer {SECRET_KEY}"


def test_submit_to_a_server_without_a_batch_api_says_so_and_names_the_local_runner(mmcli, server, tmp_path):
    # vLLM's OpenAI server has no /v1/files or /v1/batches: it answers 404, as the scripted server does.
    path = export(mmcli, tmp_path, 1)
    run = mmcli("batch", "submit", path, "--base-url", server.base_url)
    assert_clean_error(run, 4, "404")
    hint = run.stderr.split("hint:", 1)[1]
    assert "no Batch API" in hint and "vLLM has none" in hint and "run-batch" in hint and "mmcli batch collect" in hint
    assert "submitted with" not in hint  # the hint of status and fetch, about an export submitted elsewhere
    assert "provider_batches" not in manifest(path) or manifest(path)["provider_batches"] == {}
    assert [r.path for r in server.requests] == ["/v1/files"]


def test_a_resubmit_after_an_expired_batch_sends_only_the_unanswered_and_fetch_keeps_both(mmcli, server, api,
                                                                                          tmp_path):
    path = export(mmcli, tmp_path, 4)
    api.outcomes = ["expired", "completed"]
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    status = mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY)
    assert_clean_error(status, 8, "expired")
    assert "only the requests with no answer" in status.stderr
    first = manifest(path)["provider_batches"]["requests.jsonl"]["batch_id"]
    again = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
    assert again.code == 0, again.stderr
    assert "2 of 4 request(s)" in again.stderr
    recorded = manifest(path)["provider_batches"]["requests.jsonl"]
    assert [e["batch_id"] for e in recorded["earlier"]] == [first] and recorded["batch_id"] != first
    sent = [json.loads(line)["custom_id"] for line in api.files[recorded["input_file_id"]].decode().splitlines()]
    exported = [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]
    assert len(sent) == 2 and set(sent) < set(exported)  # only the two with no answer went again
    assert len(path.read_text().splitlines()) == 4  # the export itself is left as it was
    for kept in ("requests.earlier-1.output.jsonl", "requests.resubmit-1.jsonl"):  # never written into
        refused = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", tmp_path / kept, env=KEY)
        assert refused.code == 2, refused.stderr
    results = tmp_path / "r.jsonl"
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert run.code == 0, run.stderr
    assert "4 done, 0 failed" in run.stderr
    got = lines(results)
    assert len(got) == 4 and len({r["id"] for r in got}) == 4 and all(r["answer"] for r in got)
    assert len(server.chat_requests()) == 4  # 2 answered by the expired batch + 2 by the new one: none twice
    assert mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY).code == 0
    assert len(api.batches) == 2  # a completed batch is not sent again


def test_two_expired_batches_in_a_row_still_ask_each_job_once(mmcli, server, api, tmp_path):
    path = export(mmcli, tmp_path, 4)
    api.outcomes = ["expired", "expired", "completed"]
    for sent in ("4 request(s)", "2 of 4 request(s)", "1 of 4 request(s)"):
        run = mmcli("batch", "submit", path, "--base-url", api.base_url, env=KEY)
        assert run.code == 0 and sent in run.stderr, run.stderr
        assert mmcli("batch", "status", path, "--base-url", api.base_url, env=KEY).code in (0, 8)
    recorded = manifest(path)["provider_batches"]["requests.jsonl"]
    assert [e["status"] for e in recorded["earlier"]] == ["expired", "expired"]
    (tmp_path / "requests.earlier-1.output.jsonl").unlink()  # fetched again from the provider
    results = tmp_path / "r.jsonl"
    run = mmcli("batch", "fetch", path, "--base-url", api.base_url, "-o", results, env=KEY)
    assert run.code == 0, run.stderr
    assert len({r["id"] for r in lines(results)}) == len(lines(results)) == 4
    assert len(server.chat_requests()) == 4  # 2 + 1 + 1
