"""How an endpoint's failures read: HTTP failures become MmcliErrors with hints, secrets kept out."""

from __future__ import annotations

import json
import re
from typing import Optional

from ..settings import Endpoint
from ..urls import masked_text, masked_url
from ..errors import BadReply, EndpointUnavailable, MmcliError, RequestRejected
from ..hints import unreachable_hint
from .replies import summarise

# The longest Retry-After waited for (Ctrl-C ends any wait); a longer one gets the usual backoff and, if the
# endpoint still refuses, is named in the error's hint.
RETRY_AFTER_CAP = 300.0
# Statuses that may pass if asked again; others (501 Not Implemented, 505, ...) will not.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
BROKEN_REPLY_HINT = ("the server accepted the connection but did not send a complete reply: check its log, "
                     "and that --base-url points at an OpenAI-compatible endpoint")


class StatusFailure(Exception):
    """A reply with an HTTP error status, its body read (`body` is its JSON when it parses, else None)."""

    def __init__(self, response, content: Optional[bytes] = None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.status_code = response.status_code
        self.content = response.content if content is None else content  # (the first MAX_ERROR_BYTES of it)
        try:
            self.body = json.loads(self.content) if self.content else None
        except ValueError:
            self.body = None


class ConnectionFailure(Exception):
    """No usable reply: the connection failed or broke off; the httpx error is the cause."""


def redact(text: str, endpoint: Endpoint) -> str:
    """`text` with the API key and every URL's password removed, whatever the server or library echoed back."""
    key = endpoint.api_key
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return masked_text(text)


def retry_after(response) -> Optional[float]:
    """Seconds a Retry-After header asks for, or None when absent or not a plain number of seconds."""
    header = response.headers.get("retry-after") if response is not None else None
    # delay-seconds is digits (RFC 9110); nan, inf, -1, 1e9 and HTTP dates are not trusted.
    match = re.fullmatch(r"\s*(\d{1,12}(?:\.\d+)?)\s*", header or "")
    return float(match.group(1)) if match else None


MESSAGE_CHARS = 500  # a server's error message is cut here: shown on one line, and kept in the history


def _api_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return _cut(str(inner["message"]))
        if isinstance(inner, str):
            return _cut(inner)
        if body.get("message"):
            return _cut(str(body["message"]))
    content = getattr(exc, "content", None)
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(exc)
    return summarise(text, 200) or "no details"


def _cut(message: str) -> str:
    if len(message) <= MESSAGE_CHARS:
        return message
    return f"{message[:MESSAGE_CHARS]}... ({len(message) - MESSAGE_CHARS:,} more characters)"


_MEDIA_LIMIT = re.compile(r"At most (\d+) (image|video|audio)\(s\) may be provided", re.I)
# The `mmcli serve` flag that raises each kind's limit; audio has none.
_SERVE_LIMIT_FLAG = {"image": "--max-images", "video": "--max-videos"}
# A limit of 0 is the model's (vLLM sets 0 for what a model cannot read) or the server's own setting.
_NO_MEDIA_HINT = {
    "audio": "this model does not accept audio; use an audio model (docs/audio.md)",
    "video": "the server takes no video: serve a model that reads video, or restart it with a higher limit "
             "(mmcli serve --max-videos N)",
    "image": "the server takes no images: serve a vision model, or restart it with a higher limit "
             "(mmcli serve --max-images N)",
}

_HINTS = [
    (re.compile(r"maximum context length|context length|too long|max_model_len", re.I),
     "the request does not fit the model's context: lower --max-pixels or send fewer images"),
    (re.compile(r"exceeds the pre-allocated encoder cache size (\d+)", re.I),
     "the server takes at most {0} visual tokens in one image or video: send a smaller video (fewer --frames, "
     "or a --total-pixels of at most {0} x 28 x 28 for Qwen2/2.5-VL, {0} x 32 x 32 for Qwen3-VL), or restart vLLM "
     "with a larger encoder cache (--max-num-batched-tokens N; mmcli serve sizes it for the client's default video)"),
    (re.compile(r"json[ _]?schema|response_format|structured.output|grammar|regex", re.I),
     "the endpoint cannot use this --schema (or detect's guided boxes): simplify the schema (keywords its grammar "
     "backend lacks), use detect --no-guided, or set structured_output = \"none\" in the profile"),
    (re.compile(r"Failed to load image|cannot identify image", re.I),
     "the server could not read an image; check the input file"),
]


def map_api_error(exc, endpoint: Endpoint) -> MmcliError:
    """The MmcliError (with hint) for a failed request (StatusFailure or ConnectionFailure)."""
    where = masked_url(endpoint.base_url)
    if isinstance(exc, ConnectionFailure):
        return _connection_error(exc, endpoint, where)
    code = getattr(exc, "status_code", 0)
    message = redact(_api_message(exc), endpoint)
    if code >= 500:
        return _server_error(code, message, where)
    hint = _hint_for(code, message)
    if code == 429:
        seconds = retry_after(getattr(exc, "response", None))
        if seconds is not None and seconds > RETRY_AFTER_CAP:
            hint = f"the endpoint asks to wait {seconds:g} s before trying again"
    if code == 404 and not endpoint.base_url.rstrip("/").endswith("/v1"):
        hint = f"OpenAI-compatible endpoints usually end in /v1: try --base-url {where}/v1"
    error = RequestRejected(f"request rejected (HTTP {code})", message, where=where, hint=hint)
    error.status_code = code
    return error


def _connection_error(exc, endpoint: Endpoint, where: str) -> MmcliError:
    import httpx2

    cause = exc.__cause__ or exc
    why = redact(str(cause) or type(cause).__name__, endpoint)
    if isinstance(cause, httpx2.DecodingError):
        return BadReply(f"the reply cannot be decoded: {why}", where=where)
    if isinstance(cause, httpx2.TooManyRedirects):
        return EndpointUnavailable("the endpoint redirects in a loop", why, where=where,
                                   hint="check --base-url: the server sends every request elsewhere and never answers "
                                        "(a proxy or a login page?)")
    if isinstance(cause, (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError)):
        return EndpointUnavailable("the server broke off its reply", why, where=where, hint=BROKEN_REPLY_HINT)
    return EndpointUnavailable("cannot reach the endpoint", why, where=where, hint=unreachable_hint(endpoint))


def _server_error(code: int, message: str, where: str) -> MmcliError:
    if code in TRANSIENT_STATUS:
        return EndpointUnavailable(f"the server failed (HTTP {code})", message, where=where,
                                   hint="the server may be overloaded or crashed; try again later")
    if code == 501:
        return EndpointUnavailable("the server does not implement this request (HTTP 501)", message, where=where,
                                   hint="check that --base-url points at an OpenAI-compatible endpoint")
    return EndpointUnavailable(f"the server failed (HTTP {code})", message, where=where,
                               hint="this is not a passing failure: check the server's log and --base-url")


def message_hint(message: str) -> str:
    """The hint for a server's error message alone (e.g. one sent mid-stream, with no status code)."""
    return _hint_for(0, message)


def _media_limit_hint(count: str, kind: str) -> str:
    """What to do when the server takes at most `count` items of `kind` in one request."""
    kind = kind.lower()
    if count == "0" and kind in _NO_MEDIA_HINT:
        return _NO_MEDIA_HINT[kind]
    serve = f"; mmcli serve {_SERVE_LIMIT_FLAG[kind]} N" if kind in _SERVE_LIMIT_FLAG else ""
    return (f"send at most {count} {kind}(s) per request, or restart the server with a higher limit "
            f"(vLLM: --limit-mm-per-prompt '{{\"{kind}\": N}}'{serve})")


def _hint_for(code: int, message: str) -> str:
    limit = _MEDIA_LIMIT.search(message)
    if limit:
        return _media_limit_hint(*limit.groups())
    for pattern, hint in _HINTS:
        match = pattern.search(message)
        if match:
            return hint.format(*match.groups())
    if code in (401, 403):
        return "check the API key: MMCLI_API_KEY, --api-key-env NAME, or the profile's api_key_env"
    if code == 404:
        return "check --model against the models the server lists at GET /v1/models"
    if code == 413:
        return "the request is too large for the server: lower --max-pixels or send fewer images"
    if code == 429:
        return "the endpoint is rate-limiting; wait a little and try again"
    return ""
