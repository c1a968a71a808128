"""`mmcli ask` against a real local HTTP server playing scripted faults: exit codes, hints, nothing lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support import media
from tests.support.scripted_server import (NGINX_413_HTML, CutStream, ErrorEvent, Hang, Raw, Reply,
                                           ScriptedServer, Status, free_port, vllm_error)

KEY_ENV = {"MMCLI_API_KEY": SECRET_KEY}


@pytest.fixture
def photo(tmp_path):
    return media.make_small_png(tmp_path)


def ask(mmcli, server, photo, *extra, env=KEY_ENV):
    return mmcli("ask", photo, "what is here?", "--base-url", server.base_url, *extra, env=env)


def test_streamed_answer_goes_to_stdout_only(mmcli, server, photo):
    server.script(Reply("A red square on a white table."))
    run = ask(mmcli, server, photo)
    assert run.code == 0, run.stderr
    assert run.stdout == "A red square on a white table.\n"
    request = server.chat_requests()[0]
    assert request.json["stream"] is True and request.json["model"] == "qwen2.5-vl-test"
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"


def test_no_stream_and_generation_options_are_sent(mmcli, server, photo):
    server.script(Reply("fine"))
    run = ask(mmcli, server, photo, "--no-stream", "--max-tokens", "7", "--temperature", "0",
              "--system", "be brief", "-m", "my-model", "--family", "generic")
    assert run.code == 0 and run.stdout == "fine\n"
    body = server.chat_requests()[0].json
    assert body["stream"] is False and body["max_tokens"] == 7 and body["temperature"] == 0
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["model"] == "my-model"
    assert not [r for r in server.requests if r.path.endswith("/models")]  # no lookup with --model and --family


def test_text_only_question(mmcli, server):
    server.script(Reply("4"))
    run = mmcli("ask", "what is 2+2?", "--base-url", server.base_url)
    assert run.code == 0 and run.stdout.strip() == "4"
    assert server.chat_requests()[0].json["messages"][-1]["content"] == "what is 2+2?"


def test_json_has_answer_usage_and_plan(mmcli, server, photo):
    server.script(Reply("two words", usage={"prompt_tokens": 90, "completion_tokens": 2, "total_tokens": 92}))
    run = ask(mmcli, server, photo, "--json")
    result = json.loads(run.stdout)
    assert result["answer"] == "two words" and result["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 90, "completion_tokens": 2, "total_tokens": 92}
    assert result["plan"]["totals"]["visual_tokens"] == result["plan"]["items"][0]["visual_tokens"]


def test_dry_run_sends_nothing(mmcli, server, photo):
    run = ask(mmcli, server, photo, "--dry-run", "--json")
    plan = json.loads(run.stdout)
    assert server.requests == []
    assert plan["items"][0]["sent_width"] % 28 == 0
    url = plan["request"]["messages"][-1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,") and "chars)" in url and len(url) < 200
    human = ask(mmcli, server, photo, "--dry-run")
    assert human.code == 0 and "visual tokens" in human.stdout and "nothing sent" in human.stdout


def test_length_finish_warns(mmcli, server, photo):
    server.script(Reply("cut sho", finish_reason="length"))
    run = ask(mmcli, server, photo, "--max-tokens", "2")
    assert run.code == 0 and run.stdout == "cut sho\n"
    assert "token limit" in run.stderr


@pytest.mark.parametrize("message, hint", [
    ("At most 4 image(s) may be provided in one prompt.", "--limit-mm-per-prompt"),
    ("This model's maximum context length is 4096 tokens. However, you requested 9000 tokens", "--max-pixels"),
])
def test_vllm_400_messages_get_hints(mmcli, server, photo, message, hint):
    server.script(Status(400, vllm_error(400, message)))
    run = ask(mmcli, server, photo)
    assert_clean_error(run, 4, message.split(".")[0])
    assert hint in run.stderr
    assert len(server.chat_requests()) == 1  # a 4xx is not retried


def test_401_never_shows_the_key(mmcli, server, photo):
    server.script(Status(401, vllm_error(401, f"Incorrect API key provided: {SECRET_KEY}")))
    run = ask(mmcli, server, photo)
    assert_clean_error(run, 4, "401")
    assert "API key" in run.stderr


def test_404_lists_served_models(mmcli, server, photo):
    server.script(Status(404, vllm_error(404, "The model `nope` does not exist.")))
    run = ask(mmcli, server, photo, "-m", "nope")
    assert_clean_error(run, 4, "does not exist")
    assert "served models: qwen2.5-vl-test" in run.stderr


def test_413_html_body_is_summarised(mmcli, server, photo):
    server.script(Status(413, NGINX_413_HTML, content_type="text/html"))
    run = ask(mmcli, server, photo)
    assert_clean_error(run, 4, "413 Request Entity Too Large")
    assert "<" not in run.stderr and "--max-pixels" in run.stderr


@pytest.mark.parametrize("first", [Status(429, vllm_error(429, "slow down"), headers={"Retry-After": "1"}),
                                   Status(500, vllm_error(500, "boom"))])
def test_429_and_500_are_retried(mmcli, server, photo, first):
    server.script(first, Reply("second time lucky"))
    run = ask(mmcli, server, photo)
    assert run.code == 0, run.stderr
    assert run.stdout == "second time lucky\n"
    assert len(server.chat_requests()) == 2
    assert "retrying" in run.stderr
    if first.code == 429:
        gap = server.chat_requests()[1].received_at - server.chat_requests()[0].received_at
        assert gap >= 0.9  # Retry-After honoured


def test_500_every_time_gives_up_with_exit_5(mmcli, photo):
    with ScriptedServer(default=Status(500, vllm_error(500, "engine dead"))) as server:
        run = ask(mmcli, server, photo, "-m", "x")
        assert_clean_error(run, 5, "engine dead")
        assert len(server.chat_requests()) == 3


def test_connection_refused_exit_5(mmcli, photo):
    url = f"http://127.0.0.1:{free_port()}/v1"
    run = mmcli("ask", photo, "q", "--base-url", url, "-m", "x")
    assert_clean_error(run, 5, "cannot reach", url)


@pytest.mark.parametrize("args", [["--base-url", "http://127.0.0.1:{port}/v1"], [],
                                  ["--profile", "xinference", "--base-url", "http://127.0.0.1:{port}/v1"]])
def test_first_run_with_no_local_server_fails_at_once(mmcli, clean_env, photo, args):
    """Nothing listens on this machine's port: no retries (they only add silence) and a hint to --dry-run."""
    port = free_port()
    if not args:  # the default `local` profile, moved to a free port by the config file
        config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[profiles.local]\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    started = time.monotonic()
    run = mmcli("ask", photo, "q", *[a.format(port=port) for a in args], "-m", "x")
    elapsed = time.monotonic() - started
    assert_clean_error(run, 5, "cannot reach", f"127.0.0.1:{port}")
    assert "retrying" not in run.stderr
    assert "--dry-run" in run.stderr
    assert ("mmcli serve" in run.stderr) == ("xinference" not in args)  # only the local profile's hint
    assert elapsed < 20  # one refused attempt; python start-up is most of it


def test_list_models_detailed(server):
    from mmcli.net.openai_routes import list_models, list_models_detailed
    from mmcli.settings import EndpointFlags, resolve_settings

    server.models = ["Qwen/Qwen2.5-VL-7B-Instruct", "other"]
    endpoint = resolve_settings(EndpointFlags(base_url=server.base_url), {"MMCLI_CONFIG": "/nonexistent"}).endpoint
    assert list_models_detailed(endpoint) == [
        {"id": "Qwen/Qwen2.5-VL-7B-Instruct", "root": "Qwen/Qwen2.5-VL-7B-Instruct", "max_model_len": 32768},
        {"id": "other", "root": "other", "max_model_len": 32768}]
    assert list_models(endpoint) == ["Qwen/Qwen2.5-VL-7B-Instruct", "other"]
    # A server that gives only ids (and odd lengths) still lists its models.
    server.models_reply = Raw(json.dumps({"object": "list", "data": [
        {"id": "a"}, {"id": "b", "root": 5, "max_model_len": "big"}, {"id": "c", "max_model_len": True}]}))
    assert list_models_detailed(endpoint) == [{"id": i, "root": None, "max_model_len": None} for i in "abc"]


def test_read_timeout_exit_6(mmcli, server, photo):
    server.script(Hang(10))
    run = ask(mmcli, server, photo, "--timeout", "1")
    assert_clean_error(run, 6, "no answer in time")
    assert len(server.chat_requests()) == 1  # a timeout is not retried


def test_stream_cut_keeps_the_text_shown(mmcli, server, photo):
    server.script(CutStream("one two three four five six seven", after_chunks=3))
    run = ask(mmcli, server, photo)
    assert_clean_error(run, 5, "stream")
    assert run.stdout.strip() != "" and "one" in run.stdout
    assert len(server.chat_requests()) == 1  # never retried once streaming began


def test_sse_error_event_exit_5(mmcli, server, photo):
    server.script(ErrorEvent("partial answer ", "engine crashed"))
    run = ask(mmcli, server, photo)
    assert_clean_error(run, 5, "engine crashed")
    assert "partial answer" in run.stdout


def test_stream_cut_with_json_reports_partial_answer(mmcli, server, photo):
    server.script(CutStream("alpha beta gamma delta epsilon", after_chunks=2))
    run = ask(mmcli, server, photo, "--json")
    assert run.code == 5
    result = json.loads(run.stdout)
    assert result["answer"] and "error" in result


def test_default_model_is_first_served(mmcli, photo):
    with ScriptedServer(models=["Qwen/Qwen3-VL-8B-Instruct", "other"]) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "--json")
        result = json.loads(run.stdout)
        assert server.chat_requests()[0].json["model"] == "Qwen/Qwen3-VL-8B-Instruct"
        assert result["plan"]["family"] == "qwen3-vl"
        assert result["plan"]["items"][0]["sent_width"] % 32 == 0
