"""`mmcli models` and the family judged from a model's root, against a scripted endpoint on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from mmcli.media.resize import smart_resize
from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support import media
from tests.support.scripted_server import Reply, ScriptedServer, Status, free_port, vllm_error

KEY_ENV = {"MMCLI_API_KEY": SECRET_KEY}
TEXT_TOKENS = 17
# The calibration image is 1600x1200; under the client's default budget for a 28 px grid:
CHECK_H, CHECK_W = smart_resize(1200, 1600, 28, 4 * 28 * 28, 1280 * 28 * 28)
CHECK_TOKENS = (CHECK_H // 28) * (CHECK_W // 28)


@pytest.fixture
def served():
    with ScriptedServer(models=["tiny-plain", "Qwen/Qwen3-VL-8B-Instruct", "mystery"]) as server:
        server.roots = {"tiny-plain": "/models/Qwen2-VL-2B-Instruct"}
        server.version = "0.32.0"
        server.max_model_len = 4096
        yield server


def usage(prompt: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}


def test_table_lists_id_root_family_why_and_context(mmcli, served):
    run = mmcli("models", "--base-url", served.base_url, env=KEY_ENV)
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"endpoint: {served.base_url}  (vLLM 0.32.0)"
    assert lines[1].split() == ["id", "root", "family", "from", "max_model_len"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["tiny-plain"] == ["/models/Qwen2-VL-2B-Instruct", "qwen2-vl", "root", "4,096"]
    assert rows["Qwen/Qwen3-VL-8B-Instruct"][1:] == ["qwen3-vl", "id", "4,096"]
    assert rows["mystery"][1:] == ["generic", "default", "4,096"]
    assert not served.chat_requests()


def test_json_and_a_family_flag(mmcli, served):
    run = mmcli("models", "--base-url", served.base_url, "--json", "--family", "qwen2.5-vl", env=KEY_ENV)
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["vllm_version"] == "0.32.0" and data["base_url"] == served.base_url
    assert [(m["id"], m["family"], m["family_source"]) for m in data["models"]] == [
        ("tiny-plain", "qwen2.5-vl", "flag"), ("Qwen/Qwen3-VL-8B-Instruct", "qwen2.5-vl", "flag"),
        ("mystery", "qwen2.5-vl", "flag")]
    assert data["models"][0]["root"] == "/models/Qwen2-VL-2B-Instruct" and "check" not in data


def test_check_says_the_count_matches(mmcli, served):
    served.tokenize_count = TEXT_TOKENS
    served.script(Reply("x", usage=usage(TEXT_TOKENS + 2 + CHECK_TOKENS)), Reply("x", usage=usage(TEXT_TOKENS)),
                  Reply('{"ok": true}'))
    run = mmcli("models", "--check", "--base-url", served.base_url, env=KEY_ENV)
    assert run.code == 0, run.stderr
    assert f"check tiny-plain: the server counted the {CHECK_TOKENS:,} visual tokens planned" in run.stdout
    assert "structured output: the endpoint keeps its answers to a JSON Schema" in run.stdout
    image_request, text_request, structured = served.chat_requests()
    assert structured.json["response_format"]["type"] == "json_schema"
    assert image_request.json["max_tokens"] == 1 and image_request.json["model"] == "tiny-plain"
    assert isinstance(text_request.json["messages"][-1]["content"], str)  # the same question, no image
    assert [r.path for r in served.requests].count("/tokenize") == 1


def test_check_names_the_smaller_server_budget(mmcli, served):
    served.tokenize_count = TEXT_TOKENS
    shrunk = 1000  # the server's max_pixels is 1000 tokens' worth, below the client's 1280
    served.script(Reply("x", usage=usage(TEXT_TOKENS + 2 + shrunk)), Reply("x", usage=usage(TEXT_TOKENS)))
    run = mmcli("models", "--check", "--json", "--base-url", served.base_url, "-m", "tiny-plain", env=KEY_ENV)
    assert_clean_error(run, 5, "the check did not pass", "tiny-plain", "max_pixels is below the client's")
    check = json.loads(run.stdout)["check"]  # the figures are still shown
    assert check["matches"] is False and check["planned"] == CHECK_TOKENS and check["counted"] == shrunk
    assert check["tokenized_text"] == TEXT_TOKENS and check["markers"] == 2
    assert "max_pixels is below the client's" in check["finding"]
    assert "--max-tokens-per-image 1000" in check["finding"]


def test_check_of_a_generic_model_names_the_grid_it_counts_like(mmcli, served):
    # The generic client sends 1600x1200 as it is; a Qwen3-VL server resizes it to 1600x1216: 50x38 tokens.
    served.script(Reply("x", usage=usage(TEXT_TOKENS + 2 + 50 * 38)), Reply("x", usage=usage(TEXT_TOKENS)))
    run = mmcli("models", "--check", "--base-url", served.base_url, "-m", "mystery", env=KEY_ENV)
    assert_clean_error(run, 5, "the check did not pass", "mystery")
    assert "like a qwen3-vl model (1,900 tokens); pass --family qwen3-vl" in run.stdout


@pytest.mark.parametrize("image_usage, text_usage, finding", [
    (usage(TEXT_TOKENS + 2), usage(TEXT_TOKENS), "the server seems to ignore images"),
    (None, None, "the server reported no prompt token counts"),
], ids=["images-ignored", "no-counts"])
def test_a_check_that_cannot_pass_is_not_exit_0(mmcli, served, image_usage, text_usage, finding):
    served.tokenize_count = TEXT_TOKENS
    served.script(Reply("x", usage=image_usage or {}), Reply("x", usage=text_usage or {}))
    run = mmcli("models", "--check", "--base-url", served.base_url, "-m", "tiny-plain", env=KEY_ENV)
    assert_clean_error(run, 5, "the check did not pass", finding)
    assert "check tiny-plain: " in run.stdout and finding in run.stdout


def test_check_of_a_model_not_served(mmcli, served):
    run = mmcli("models", "--check", "--base-url", served.base_url, "-m", "nope", env=KEY_ENV)
    assert_clean_error(run, 2, "does not serve this model", "nope")
    assert "tiny-plain" in run.stderr and not served.chat_requests()


def test_unreachable_endpoint(mmcli):
    run = mmcli("models", "--base-url", f"http://127.0.0.1:{free_port()}/v1")
    assert_clean_error(run, 5)


@pytest.mark.parametrize("host", ["a..b", "a" * 70 + ".com"])
def test_a_host_no_name_server_takes_is_an_unreachable_endpoint(mmcli, host):
    """A host name the IDNA codec refuses (an empty label, one past 63 letters) is an endpoint nothing answers
    at, not an internal error."""
    run = mmcli("ask", "hi", "--no-stream", "--base-url", f"http://{host}/v1", env=KEY_ENV)
    assert_clean_error(run, 5, "cannot reach the endpoint", f"{host} is not a host name")


def test_family_from_root_goes_into_the_plan(mmcli, served, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--base-url", served.base_url, "-m", "tiny-plain", "--json", env=KEY_ENV)
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)["plan"]
    assert (plan["family"], plan["family_source"]) == ("qwen2-vl", "root")
    assert plan["items"][0]["sent_width"] % 28 == 0 and "notes" not in plan


def test_nothing_tells_the_family_stays_generic_with_a_note(mmcli, served, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--base-url", served.base_url, "-m", "mystery", "--json", env=KEY_ENV)
    plan = json.loads(run.stdout)["plan"]
    assert (plan["family"], plan["family_source"]) == ("generic", "default")
    [note] = plan["notes"]
    assert "'mystery'" in note and "name no known family" in note and "--family" in note


def test_dry_run_footer_uses_the_probe_kept_by_models(mmcli, served, tmp_path):
    photo = media.make_small_png(tmp_path)
    assert mmcli("models", "--base-url", served.base_url, env=KEY_ENV).code == 0
    asked = len(served.requests)
    run = mmcli("ask", photo, "q", "--base-url", served.base_url, "--dry-run", env=KEY_ENV)
    assert run.code == 0, run.stderr
    assert "model: tiny-plain  family: qwen2-vl (from root)" in run.stdout
    assert len(served.requests) == asked  # a dry run sends nothing; the kept probe told it all


@pytest.mark.parametrize("reply, works, fragment", [
    (Reply("sure, ok"), False, "did not keep to it"),
    (Status(400, vllm_error(400, "response_format json_schema is not supported")), False, "refused"),
])
def test_check_says_when_structured_output_does_not_work(mmcli, served, reply, works, fragment):
    served.script(Reply("x", usage=usage(TEXT_TOKENS + 2 + CHECK_TOKENS)), Reply("x", usage=usage(TEXT_TOKENS)),
                  reply)
    run = mmcli("models", "--check", "--json", "--base-url", served.base_url, env=KEY_ENV)
    assert run.code == 0, run.stderr
    structured = json.loads(run.stdout)["structured_output"]
    assert structured["works"] is works and fragment in structured["finding"]
