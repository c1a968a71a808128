"""A corpus of bad server replies, played by a real HTTP server on 127.0.0.1.

Each case must end with exit 5 (or 4), never 1 (a bug), with one `mmcli: error:` line, and must
keep on stdout any text already streamed. Every new endpoint feature adds its bad replies here.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support import media
from tests.support.scripted_server import (Drop, Events, Raw, Reply, ScriptedServer, Status, chunk, completion,
                                           vllm_error)

KEY_ENV = {"MMCLI_API_KEY": SECRET_KEY}
HTML = "<html><head><title>Welcome to nginx!</title></head><body><h1>It works</h1></body></html>"
BAD_UTF8_BODY = (b'{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,'
                 b'"message":{"role":"assistant","content":"caf\xe9 \xff"},"finish_reason":"stop"}]}')
BAD_UTF8_EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"\xff\xfe"}}]}\n\n'


def _with_choices(choices) -> dict:
    return dict(completion("unused"), choices=choices)


def _message(content) -> list:
    return [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]


# (id, action the server repeats, --no-stream?, exit code, fragment of the error line, text kept on stdout)
CASES = [
    ("html-200", Status(200, HTML, content_type="text/html"), True, 5, "Welcome to nginx", ""),
    ("html-200-streaming", Status(200, HTML, content_type="text/html"), False, 5, "HTML page", ""),
    ("cut-json", Raw('{"id": "x", "object": "chat.completion", "choi'), True, 5, "not valid JSON", ""),
    ("empty-body", Raw(""), True, 5, "the reply is empty", ""),
    ("json-list", Raw("[1, 2]"), True, 5, "is a list, not a JSON object", ""),
    ("json-string", Raw('"ok"'), True, 5, "is a string", ""),
    ("error-object-with-200", Status(200, {"error": {"message": "engine overloaded"}}), True, 5,
     "engine overloaded", ""),
    ("empty-choices", Status(200, _with_choices([])), True, 5, "'choices' is empty", ""),
    ("no-choices", Status(200, {"id": "x", "model": "m"}), True, 5, "no 'choices'", ""),
    ("choices-string", Status(200, _with_choices("nope")), True, 5, "'choices' is a string, not a list", ""),
    ("choices-of-strings", Status(200, _with_choices(["nope"])), True, 5, "choices[0] is a string", ""),
    ("missing-message", Status(200, _with_choices([{"index": 0, "finish_reason": "stop"}])), True, 5,
     "no 'message'", ""),
    ("content-number", Status(200, _with_choices(_message(42))), True, 5, "content is a number, not text", ""),
    ("content-list", Status(200, _with_choices(_message(["a"]))), True, 5, "content is a list", ""),
    ("invalid-utf8", Raw(BAD_UTF8_BODY), True, 5, "not valid UTF-8", ""),
    ("undecodable-gzip", Raw(b"not gzip at all", headers={"Content-Encoding": "gzip"}), True, 5,
     "cannot be decoded", ""),
    ("sse-to-a-plain-request", Events([chunk("hello ")]), True, 5, "is an event stream", ""),
    ("sse-junk-event", Events([chunk("hello "), "{not json}"]), False, 5, "not valid JSON", "hello"),
    ("sse-list-event", Events([chunk("hello "), "[1, 2]"]), False, 5, "is a list", "hello"),
    ("sse-choices-string", Events([chunk("hello "), dict(chunk("x"), choices="bad")]), False, 5,
     "'choices' is a string", "hello"),
    ("sse-delta-number", Events([chunk("hello "), dict(chunk("x"), choices=[{"index": 0, "delta": {"content": 5}}])]),
     False, 5, "content is a number", "hello"),
    ("sse-delta-string", Events([chunk("hello "), dict(chunk("x"), choices=[{"index": 0, "delta": "x"}])]),
     False, 5, "'delta' is a string", "hello"),
    ("sse-invalid-utf8", Events([chunk("hello "), BAD_UTF8_EVENT]), False, 5, "not valid UTF-8", "hello"),
    ("sse-error-string", Events([chunk("hello "), {"error": "boom"}]), False, 5, "boom", "hello"),
    ("sse-only-done", Events([]), False, 5, "no event carried 'choices'", ""),
    ("sse-no-choices-ever", Events([dict(chunk(None), choices=[])]), False, 5, "held no answer", ""),
    ("sse-nothing-at-all", Events([], done=False), False, 5, "before any answer", ""),
    ("sse-never-done", Events([chunk("hello "), chunk("world")], done=False), False, 5,
     "before the answer was complete", "hello world"),
    ("sse-done-without-finish", Events([chunk("hello "), chunk("world")]), False, 5,
     "no finish reason", "hello world"),
    ("sse-cut", Events([chunk("hello "), chunk("world")], done=False, cut=True), False, 5, "stream was cut",
     "hello world"),
    ("short-body", Raw(json.dumps(completion("hello")), length=5000), True, 5, "broke off its reply", ""),
    ("short-body-streaming", Raw(json.dumps(completion("hello")), length=5000), False, 5, "broke off its reply", ""),
    ("closed-connection", Drop(), True, 5, "broke off its reply", ""),
    ("closed-connection-streaming", Drop(), False, 5, "broke off its reply", ""),
    ("501", Status(501, vllm_error(501, "chat is not implemented")), True, 5, "does not implement", ""),
    ("505", Status(505, "HTTP Version Not Supported", content_type="text/plain"), True, 5, "HTTP 505", ""),
]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return media.make_small_png(tmp_path_factory.mktemp("bad-replies"))


@pytest.mark.parametrize("name, action, no_stream, code, fragment, kept", CASES, ids=[c[0] for c in CASES])
def test_bad_reply(mmcli, photo, name, action, no_stream, code, fragment, kept):
    with ScriptedServer(default=action) as server:
        run = mmcli("ask", photo, "what is here?", "--base-url", server.base_url, "-m", "m",
                    *(["--no-stream"] if no_stream else []), env=KEY_ENV)
    assert_clean_error(run, code, fragment, server.base_url)
    assert "mmcli serve" not in run.stderr  # the server answered: starting one is not the advice
    assert run.stdout.strip() == kept
    assert server.errors == []


PARTIAL = [case for case in CASES if case[5]]


@pytest.mark.parametrize("name, action, no_stream, code, fragment, kept", PARTIAL, ids=[c[0] for c in PARTIAL])
def test_bad_stream_keeps_partial_answer_in_json(mmcli, photo, name, action, no_stream, code, fragment, kept):
    with ScriptedServer(default=action) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", "--json", env=KEY_ENV)
    assert run.code == code, run.stderr
    result = json.loads(run.stdout)
    assert result["answer"].strip() == kept
    assert fragment.lower() in result["error"].lower()


@pytest.mark.parametrize("action, requests", [
    (Drop(), 3),  # a dropped connection may be a restart: asked again
    (Raw("{}", length=100), 3),
    (Status(501), 1),  # not implemented will not change
    (Status(505), 1),
    (Raw(b"x", headers={"Content-Encoding": "gzip"}), 1),
    (Status(200, HTML, content_type="text/html"), 1),
])
def test_which_bad_replies_are_asked_again(mmcli, photo, action, requests):
    with ScriptedServer(default=action) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", "--no-stream", env=KEY_ENV)
    assert run.code == 5, run.stderr
    assert len(server.chat_requests()) == requests


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf", "1e3", "99999999999999", "soon", "",
                                   "Wed, 21 Oct 2015 07:28:00 GMT", "0x10", "1_0"])
def test_bad_retry_after_uses_the_normal_backoff(mmcli, photo, value):
    with ScriptedServer() as server:
        server.script(Status(429, vllm_error(429, "slow down"), headers={"Retry-After": value}), Reply("fine"))
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", env=KEY_ENV)
    assert run.code == 0, run.stderr
    assert run.stdout == "fine\n"
    assert "retrying in 0.5 s" in run.stderr  # the wait between the requests is checked below, not the run's time
    gap = server.chat_requests()[1].received_at - server.chat_requests()[0].received_at
    assert 0.4 <= gap < 5


def test_retry_after_beyond_the_cap_is_named_in_the_hint(mmcli, photo):
    limited = Status(429, vllm_error(429, "quota"), headers={"Retry-After": "3600"})
    with ScriptedServer(default=limited) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", env=KEY_ENV)
    assert_clean_error(run, 4, "429", "quota")
    assert "asks to wait 3600 s" in run.stderr
    assert len(server.chat_requests()) == 3


def test_finish_without_done_is_a_whole_answer(mmcli, photo):
    with ScriptedServer(default=Events([chunk("all "), chunk("here", finish_reason="stop")], done=False)) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", env=KEY_ENV)
    assert run.code == 0, run.stderr
    assert run.stdout == "all here\n"


def test_json_reply_to_a_streaming_request_is_accepted(mmcli, photo):
    # Some servers ignore "stream": a whole, valid completion is still the answer.
    with ScriptedServer(default=Status(200, completion("whole answer"))) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", env=KEY_ENV)
    assert run.code == 0, run.stderr
    assert run.stdout == "whole answer\n"


@pytest.mark.parametrize("body, fragment", [
    (HTML, "HTML page"),
    ('{"object": "list", "data": "x"}', "'data' is a string"),
    ('{"object": "list", "data": [{"object": "model"}]}', "has no 'id'"),
    ('{"object": "list", "da', "not valid JSON"),
])
def test_bad_model_list(mmcli, photo, body, fragment):
    """Without --model the served models are listed first; a bad list is a bad reply too."""
    with ScriptedServer() as server:
        server_models = Raw(body, content_type="text/html" if body.startswith("<") else "application/json")
        run = _ask_with_models_reply(mmcli, photo, server, server_models)
    assert_clean_error(run, 5, fragment)
    assert server.chat_requests() == []


def _ask_with_models_reply(mmcli, photo, server, reply: Raw):
    # GET /v1/models is served by the scripted server itself; swap in the bad list for this test.
    server.models_reply = reply
    return mmcli("ask", photo, "q", "--base-url", server.base_url, env=KEY_ENV)
