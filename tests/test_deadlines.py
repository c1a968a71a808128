"""--timeout is a deadline, not a per-read timeout: servers that drip their status line, headers, body or
stream one byte at a time end at it (exit 6), on every route, with what had arrived kept.

Each dripping server would finish a good reply if waited for (some seconds later): a client that only
times each read would succeed, so these tests fail without the deadline rather than hang."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_clean_error
from tests.support.drip_server import DripServer, event_stream_head, http_reply
from tests.support.scripted_server import Events, chunk, completion

ASK = ("--timeout", "1", "--model", "m", "--family", "qwen2.5-vl")


def _split(reply: bytes, at: int) -> dict:
    return {"head": reply[:at], "drip": reply[at:], "tail": b""}


def test_a_dripped_status_line_ends_at_the_timeout(mmcli):
    reply = http_reply(completion("fine"))
    headers_end = reply.index(b"\r\n\r\n") + 4
    # the status line and headers one byte every 0.1 s (several seconds), then the whole answer
    with DripServer(drip=reply[:headers_end], tail=reply[headers_end:], delay=0.1) as server:
        run = mmcli("ask", "q", *ASK, "--base-url", server.url + "/v1")
    assert_clean_error(run, 6, "no answer in time", "the reply did not begin within 1 s")
    assert "fine" not in run.stdout


def test_a_dripped_body_ends_at_the_timeout(mmcli):
    reply = http_reply(completion("fine " * 20))
    with DripServer(**_split(reply, reply.index(b"\r\n\r\n") + 10), delay=0.02) as server:
        run = mmcli("ask", "q", "--no-stream", *ASK, "--base-url", server.url + "/v1")
    assert_clean_error(run, 6, "no answer in time", "the reply was not whole within 1 s")


def test_a_dripped_stream_keeps_the_answer_that_arrived(mmcli):
    first = f"data: {json.dumps(chunk('kept so far'))}\n\n".encode()
    rest = f"data: {json.dumps(chunk(' and more', 'stop'))}\n\ndata: [DONE]\n\n".encode()
    with DripServer(head=event_stream_head() + first, drip=rest, delay=0.05) as server:
        run = mmcli("ask", "q", "--stream", *ASK, "--base-url", server.url + "/v1")
    assert_clean_error(run, 6, "the answer stopped arriving", "no new part of it for 1 s")
    assert "kept so far" in run.stdout and "and more" not in run.stdout


def test_a_stream_whose_events_keep_coming_is_not_cut(mmcli, server):
    # each event within the timeout, the whole answer longer than it: a long answer is never cut
    server.script(Events([chunk(f"w{n} ") for n in range(8)] + [chunk("", "stop")], delay=0.3))
    run = mmcli("ask", "q", "--stream", "--timeout", "1", "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    assert "w0 w1 w2 w3 w4 w5 w6 w7" in run.stdout


@pytest.mark.parametrize("empty", [None, ""], ids=["no-content", "empty-content"])
def test_events_with_nothing_in_them_do_not_keep_a_stalled_answer_alive(mmcli, server, empty):
    # an empty event every 0.4 s (each within the timeout), the rest of the answer only after 4 s
    server.script(Events([chunk("kept so far")] + [chunk(empty)] * 10 + [chunk(" too late", "stop")], delay=0.4))
    run = mmcli("ask", "q", "--stream", *ASK, "--base-url", server.base_url)
    assert_clean_error(run, 6, "the answer stopped arriving", "no new part of it for 1 s")
    assert "kept so far" in run.stdout and "too late" not in run.stdout


def _thinking(text: str) -> dict:
    event = chunk(None)
    event["choices"][0]["delta"] = {"reasoning_content": text}
    return event


def test_a_model_that_thinks_before_it_answers_is_not_cut(mmcli, server):
    # reasoning parts carry no answer text, but they are the answer being written
    server.script(Events([_thinking(f"t{n} ") for n in range(6)] + [chunk("done", "stop")], delay=0.3))
    run = mmcli("ask", "q", "--stream", *ASK, "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    assert "done" in run.stdout


@pytest.mark.parametrize("route", ["embeddings", "transcriptions", "models", "tokenize"])
def test_other_routes_end_at_the_timeout_too(route, clean_environ):
    from mmcli.errors import EndpointTimeout
    from mmcli.net import openai_routes, vllm_routes
    from mmcli.settings import BUILTIN_PROFILES, Endpoint

    reply = http_reply({"object": "list", "data": []})
    with DripServer(drip=reply, delay=0.1) as server:
        endpoint = Endpoint(server.url + "/v1", BUILTIN_PROFILES["local"], api_key="k", timeout=1)
        calls = {
            "embeddings": lambda: openai_routes.embed(endpoint, {"model": "m", "input": ["a"]}),
            "transcriptions": lambda: openai_routes.transcribe(endpoint, b"RIFF", "a.wav", {"model": "m"}),
            "models": lambda: openai_routes.list_models(endpoint),
            "tokenize": lambda: vllm_routes.tokenize(endpoint, {"model": "m", "messages": []}),
        }
        with pytest.raises(EndpointTimeout) as caught:
            calls[route]()
    assert "1 s" in caught.value.why


def test_a_media_url_that_drips_its_headers_ends_at_the_timeout(mmcli, server):
    empty = http_reply(b"", content_type="image/jpeg")  # no body: only the headers' drip can end it in time
    with DripServer(drip=empty, delay=0.1) as media:
        run = mmcli("ask", f"{media.url}/x.jpg", "q", "--timeout", "1", "--base-url", server.base_url)
    assert_clean_error(run, 3, "cannot download media", "not whole within 1 s")
    assert server.chat_requests() == []


def test_a_health_check_that_drips_is_not_ready():
    from mmcli.server.network import healthy
    from tests.support.scripted_server import ScriptedServer

    with DripServer(drip=http_reply(b"", content_type="text/plain"), delay=0.2) as server:
        assert healthy(server.url, timeout=1) is False  # a whole 200 after several seconds: too late
    with ScriptedServer() as server:
        assert healthy(server.root_url) is True
