"""The httpx transport's own rules: how long a Retry-After is waited for, and that the wait is said."""

from __future__ import annotations

import httpx2
import pytest

from mmcli.net.apierrors import StatusFailure
from mmcli.net.transport import retry_delay
from tests.support import media
from tests.support.scripted_server import Reply, Status, vllm_error


def failure(retry_after: str) -> StatusFailure:
    return StatusFailure(httpx2.Response(429, headers={"Retry-After": retry_after}, content=b"{}"))


@pytest.mark.parametrize("value, attempt, expected", [
    ("1", 1, (1.0, True)),
    ("45", 1, (45.0, True)),  # above 30 s: honoured now, and said
    ("300", 2, (300.0, True)),
    ("3600", 1, (0.5, False)),  # beyond the cap: the usual backoff, then the wait named in the hint
    ("3600", 2, (1.0, False)),
    ("soon", 1, (0.5, False)),
])
def test_retry_after_is_honoured_up_to_the_cap(value, attempt, expected):
    assert retry_delay(failure(value), attempt) == expected


def test_the_wait_the_endpoint_asks_for_is_said(mmcli, server, tmp_path):
    server.script(Status(429, vllm_error(429, "slow down"), headers={"Retry-After": "1"}), Reply("fine"))
    run = mmcli("ask", media.make_small_png(tmp_path), "q", "--base-url", server.base_url, "-m", "m")
    assert run.code == 0, run.stderr
    assert "HTTP 429; the endpoint asks to wait 1 s; retrying in 1.0 s (1/2)" in run.stderr
