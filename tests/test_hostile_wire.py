"""Hostile servers and odd endpoints: queries in base URLs, passwords in plans, drips, bombs, long errors."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Events, Raw, Reply, Status


@pytest.mark.parametrize("suffix", ["?api_key=sk-QUERY", "#frag", "?"])
def test_a_base_url_with_a_query_or_fragment_is_refused(mmcli, server, suffix):
    run = mmcli("ask", "q", "--base-url", server.base_url + suffix)
    assert_clean_error(run, 2, "invalid base URL", "query or fragment")
    assert "sk-QUERY" not in run.output and server.chat_requests() == []


# MMCLI_BASE_URL holds URLs separated by whitespace, so only the flag can carry a space or a line end in one
@pytest.mark.parametrize("odd, where", [(odd, "flag") for odd in ("\x1b", "\n", " ", "\t", "\u200b")]
                         + [("\x1b", "env"), ("\x7f", "env"), ("\u200b", "env")])
def test_a_base_url_with_a_space_or_control_character_is_refused(mmcli, server, odd, where):
    url = server.base_url.replace("http://", "http://user:pw-SECRET@") + odd
    args, env = (["--base-url", url], {}) if where == "flag" else ([], {"MMCLI_BASE_URL": url})
    run = mmcli("ask", "q", "-m", "m", *args, env=env)
    assert_clean_error(run, 2, "invalid base URL", "space or control character", "user:***@")
    assert "hint:" in run.stderr and "pw-SECRET" not in run.output and "\x1b" not in run.output
    assert server.requests == []


def test_the_api_refuses_such_a_base_url_too(server, clean_environ):
    import mmcli
    from mmcli.errors import UsageError

    with pytest.raises(UsageError, match="invalid base URL"):
        mmcli.Client(base_url=server.base_url + "\n").ask([], "q")
    assert server.requests == []


def test_plans_and_answers_never_hold_the_url_password(server, clean_environ):
    import mmcli

    server.script(Reply("fine"))
    url = server.base_url.replace("http://", "http://user:pw-SECRET@")
    client = mmcli.Client(base_url=url)
    plan = client.plan([], "q")
    answer = client.ask([], "q")
    for shown in (repr(plan), plan.base_url, repr(answer), answer.plan.base_url, repr(client)):
        assert "pw-SECRET" not in shown


def test_keepalive_comments_do_not_hold_off_the_timeout(mmcli, server):
    server.script(Events([b": keepalive\n\n"] * 20, delay=0.3, done=False))  # 6 s of comments, no answer
    run = mmcli("ask", "q", "--timeout", "1", "--base-url", server.base_url)
    assert_clean_error(run, 6, "stopped arriving")


class _Drip(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


@pytest.fixture
def dripping():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_media_url_that_drips_bytes_ends_at_the_timeout(mmcli, server, dripping):
    run = mmcli("ask", f"{dripping}/x.jpg", "q", "--timeout", "1", "--base-url", server.base_url)
    assert_clean_error(run, 3, "cannot download media", "not whole within 1 s")
    assert server.chat_requests() == []


@pytest.mark.parametrize("config", ["/dev/zero", "fifo", "dir"])
def test_a_config_path_that_is_not_a_regular_file_is_refused(mmcli, tmp_path, config):
    import os

    if config == "fifo":
        config = str(tmp_path / "fifo")
        os.mkfifo(config)
    elif config == "dir":
        config = str(tmp_path)
    run = mmcli("ask", "q", env={"MMCLI_CONFIG": config})
    assert run.code == 2 and "config file" in run.stderr, run.stderr


def test_a_gzip_bomb_is_a_clean_reply_too_large(mmcli, server):
    bomb = gzip.compress(b" " * (80 << 20), 9)  # 80 MB once inflated, over the 64 MB cap
    server.script(Raw(bomb, headers={"Content-Encoding": "gzip"}))
    run = mmcli("ask", "q", "--no-stream", "--base-url", server.base_url)
    assert_clean_error(run, 5, "too large")


def test_a_huge_error_message_is_cut_on_screen_and_in_the_history(mmcli, server, tmp_path):
    import sqlite3

    server.script(Status(400, {"error": {"message": "A" * 3_000_000}}))
    run = mmcli("ask", "q", "--base-url", server.base_url)
    assert run.code == 4 and len(run.stderr) < 2000 and "AAAA" in run.stderr
    error = sqlite3.connect(tmp_path / "state" / "mmcli" / "history.db").execute("SELECT error FROM turns").fetchone()[0]
    assert len(error) < 2000


def test_a_long_error_message_that_parses_is_cut_too(mmcli, server):
    server.script(Status(400, {"error": {"message": "B" * 100_000}}))
    run = mmcli("ask", "q", "--base-url", server.base_url)
    assert run.code == 4 and len(run.stderr) < 2000 and "more characters" in run.stderr


def test_a_redirect_loop_is_named_and_not_retried(mmcli, server):
    loop = Status(307, b"", headers={"Location": "/v1/chat/completions"})
    server.script(*[loop] * 30)
    run = mmcli("ask", "q", "--base-url", server.base_url)
    assert_clean_error(run, 5, "redirects in a loop")
    assert "mmcli serve" not in run.stderr and "retrying" not in run.stderr


@pytest.mark.parametrize("route", ["tokenize", "version"])
def test_a_gzip_bomb_from_vllms_own_routes_is_stopped_at_the_cap(route, clean_environ):
    from mmcli.errors import BadReply
    from mmcli.net import vllm_routes
    from mmcli.settings import BUILTIN_PROFILES, Endpoint
    from tests.support.drip_server import DripServer

    bomb = gzip.compress(b" " * (80 << 20), 9)  # 80 MB once inflated, over the 64 MB cap
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n").encode() + bomb
    with DripServer(head=head) as server:
        endpoint = Endpoint(server.url + "/v1", BUILTIN_PROFILES["local"], api_key="k", timeout=30)
        calls = {"tokenize": lambda: vllm_routes.tokenize(endpoint, {"model": "m", "messages": []}),
                 "version": lambda: vllm_routes.server_version(endpoint)}
        with pytest.raises(BadReply) as caught:
            calls[route]()
    assert "too large" in caught.value.why
