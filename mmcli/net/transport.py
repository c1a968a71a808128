"""The HTTP transport: one keep-alive httpx client per endpoint; requests sent, retried and their failures typed.

Replies are handed back as raw httpx responses: mmcli reads every body itself (mmcli.net.replies), so no
SDK is needed to send. What may pass if asked again (a dropped connection, 429, 500/502/503/504) is
retried; a Retry-After is honoured up to RETRY_AFTER_CAP seconds and said in a status line.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from .apierrors import (RETRY_AFTER_CAP, TRANSIENT_STATUS, ConnectionFailure, StatusFailure, map_api_error,
                        retry_after)
from ..settings import Endpoint
from ..errors import BadReply, EndpointTimeout
from ..limits import MAX_REPLY_BYTES
from ..urls import is_loopback, masked_url

RETRY_ATTEMPTS = 3
MAX_ERROR_BYTES = 1 << 20  # of an error reply's body: enough for any message
CONNECT_TIMEOUT = 10.0
StatusFn = Callable[[str], None]


def http_timeout(endpoint: Endpoint):
    """The httpx timeout for this endpoint: --timeout, with a shorter connect."""
    import httpx2

    return httpx2.Timeout(endpoint.timeout, connect=min(CONNECT_TIMEOUT, endpoint.timeout))


_CLIENTS: dict = {}  # one client (and connection pool) per endpoint, shared by the senders of a run
_CLIENTS_LOCK = threading.Lock()


def http_client(endpoint: Endpoint):
    """The keep-alive httpx client for this endpoint and key (made once per process)."""
    return _client_and_deadline(endpoint)[0]


def request_deadline(endpoint: Endpoint):
    """The deadline (mmcli.net.deadline.Deadline) this endpoint's client keeps for the current thread: each
    request starts it at --timeout; a streamed answer moves it on with each event."""
    return _client_and_deadline(endpoint)[1]


def _client_and_deadline(endpoint: Endpoint) -> tuple:
    key = endpoint.require_key()
    cache_key = (endpoint.base_url, key, endpoint.timeout)
    with _CLIENTS_LOCK:
        made = _CLIENTS.get(cache_key)
        if made is None:
            made = _CLIENTS[cache_key] = _new_client(endpoint, key)
        return made


def _new_client(endpoint: Endpoint, key: str) -> tuple:
    import httpx2

    from .. import __version__
    from .deadline import Deadline

    deadline = Deadline()
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": f"mmcli/{__version__}"}
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    # --timeout is the whole wait for a reply (connect, upload, the reply itself): httpx's timeout runs per
    # read, and a server dripping bytes would never reach it. Redirects and retries each start again.
    options = dict(base_url=endpoint.base_url, headers=headers, timeout=http_timeout(endpoint), limits=limits,
                   follow_redirects=True, event_hooks={"request": [lambda _: deadline.start(endpoint.timeout)]})
    if endpoint.base_url.lower().startswith("http://"):
        # Loading the system's certificates costs a fifth of a second; a plain-http endpoint needs them
        # only if it redirects to https, so that transport is made on first use.
        client = httpx2.Client(**options, verify=_no_ca_context(), mounts={"https://": _LazyTLS(limits, deadline)})
    else:
        client = httpx2.Client(**options)
    deadline.hold_client(client)
    return client, deadline


def _no_ca_context():
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and trusts nothing: never used for https


class _LazyTLS:
    """An https transport that loads the certificates when the first https request needs them."""

    def __init__(self, limits, deadline) -> None:
        self.limits = limits
        self.deadline = deadline
        self.lock = threading.Lock()
        self.transport = None

    def handle_request(self, request):
        """Send over the real https transport, made on first use."""
        import httpx2

        with self.lock:
            if self.transport is None:
                transport = httpx2.HTTPTransport(limits=self.limits)
                self.deadline.hold(transport)
                self.transport = transport
        return self.transport.handle_request(request)

    def close(self) -> None:
        """Close the real transport if one was made."""
        if self.transport is not None:
            self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def send(endpoint: Endpoint, method: str, path: str, *, status: Optional[StatusFn] = None,
         pacer=None, **content):
    """One request with retries; the response with its body unread (a stream: read it with read_limited,
    which caps it), or the mapped MmcliError.

    `content` is httpx's: json=, files=, data=. `pacer` (many-job runs) is shared by every sender: each
    attempt waits for it, and a 429 pauses it."""
    return _send(endpoint, method, path, False, status, pacer, content)[0]


def send_read(endpoint: Endpoint, method: str, path: str, *, status: Optional[StatusFn] = None,
              pacer=None, **content) -> tuple:
    """As send, with the body read whole (up to MAX_REPLY_BYTES once decoded) within the same attempt, so
    a reply broken off is asked again as a refused connection is: (response, body)."""
    return _send(endpoint, method, path, True, status, pacer, content)


def _send(endpoint: Endpoint, method: str, path: str, whole: bool, status, pacer, content: dict) -> tuple:
    import httpx2

    client = http_client(endpoint)
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        if pacer is not None:
            pacer.wait()
        try:
            return _attempt(client, method, path, content, whole)
        except httpx2.TimeoutException as exc:
            raise _timed_out(exc, endpoint, whole) from None
        except (ConnectionFailure, StatusFailure) as exc:
            if attempt == RETRY_ATTEMPTS or not _worth_retrying(exc, endpoint):
                raise map_api_error(exc, endpoint) from None
            delay, asked = retry_delay(exc, attempt)
            if pacer is not None and getattr(exc, "status_code", None) == 429:
                pacer.pause(delay)  # a rate limit holds back every sender, not only this one
            if status:
                said = f"; the endpoint asks to wait {delay:g} s" if asked else ""
                status(f"{_short_reason(exc)}{said}; retrying in {delay:.1f} s ({attempt}/{RETRY_ATTEMPTS - 1})")
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises


def _timed_out(exc: Exception, endpoint: Endpoint, whole: bool) -> EndpointTimeout:
    import httpx2

    if isinstance(exc, httpx2.ConnectTimeout):
        why = f"could not connect within {min(CONNECT_TIMEOUT, endpoint.timeout):g} s"
    elif whole:
        why = f"the reply was not whole within {endpoint.timeout:g} s"
    else:
        why = f"the reply did not begin within {endpoint.timeout:g} s"
    return EndpointTimeout("no answer in time", why, where=masked_url(endpoint.base_url),
                           hint="raise --timeout, or lower --max-pixels to make the request lighter")


def _attempt(client, method: str, path: str, content: dict, whole: bool) -> tuple:
    import httpx2

    try:
        request = client.build_request(method, path, **content)
        response = client.send(request, stream=True)  # read here or by the caller: capped, within the deadline
    except httpx2.TimeoutException:
        raise
    except (httpx2.HTTPError, httpx2.InvalidURL, httpx2.StreamError) as exc:
        raise ConnectionFailure(str(exc) or type(exc).__name__) from exc
    if response.status_code < 400 and not whole:
        return response, None
    try:
        if response.status_code < 400:
            return response, read_limited(response, MAX_REPLY_BYTES, where=masked_url(str(client.base_url)))
        content = read_limited(response, MAX_ERROR_BYTES, cut=True)  # the error's body, for its message
    except httpx2.TimeoutException:
        raise
    except httpx2.HTTPError as exc:
        raise ConnectionFailure(str(exc) or type(exc).__name__) from exc
    finally:
        response.close()
    raise StatusFailure(response, content)


def read_limited(response, limit: int, cut: bool = False, where: str = "") -> bytes:
    """The body, decoded, up to `limit` bytes: beyond it the rest is left unread (`cut`), or the reply is
    refused. A small gzip reply can inflate to gigabytes; this stops it at the limit."""
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        chunks.append(chunk)
        if total > limit:
            if cut:
                return b"".join(chunks)[:limit]
            raise BadReply(f"the reply is too large: over {limit >> 20} MB once decoded", where=where,
                           hint="the server may be broken or hostile; check --base-url")
    return b"".join(chunks)


def _worth_retrying(exc: Exception, endpoint: Endpoint) -> bool:
    if isinstance(exc, StatusFailure):
        return exc.status_code in TRANSIENT_STATUS
    import httpx2

    if isinstance(exc.__cause__, (httpx2.DecodingError, httpx2.TooManyRedirects)):
        return False  # a body that cannot be decoded will not decode next time, nor a redirect loop end
    # Nothing listens on this machine's port: asking again 0.5 s later will not change that.
    return not (_refused(exc) and is_loopback(endpoint.base_url))


def _refused(exc: Exception) -> bool:
    import httpx2

    return isinstance(exc.__cause__, httpx2.ConnectError)


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, StatusFailure):
        return f"HTTP {exc.status_code}"
    return "connection failed" if _refused(exc) else "the server broke off its reply"


def retry_delay(exc: Exception, attempt: int) -> tuple[float, bool]:
    """Seconds to wait before the next attempt, and whether the endpoint asked for them (Retry-After)."""
    seconds = retry_after(getattr(exc, "response", None))
    if seconds is not None and seconds <= RETRY_AFTER_CAP:
        return seconds, True
    return 0.5 * 2 ** (attempt - 1), False
