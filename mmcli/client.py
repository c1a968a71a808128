"""The only code that talks HTTP: chat requests, model listing and media downloads."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .config import Endpoint, is_loopback, masked_url
from .errors import EndpointTimeout, EndpointUnavailable, MediaError, MmcliError, RequestRejected
from .replies import BadReply, Piece, chunk_piece, completion_piece, decode_json, error_message, iter_sse, summarise

RETRY_ATTEMPTS = 3
RETRY_AFTER_CAP = 30.0
CONNECT_TIMEOUT = 10.0
# Statuses that may pass if asked again; others (501 Not Implemented, 505, ...) will not.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
BROKEN_REPLY_HINT = ("the server accepted the connection but did not send a complete reply: check its log, "
                     "and that --base-url points at an OpenAI-compatible endpoint")
StatusFn = Callable[[str], None]


@dataclass
class ChatResult:
    """What came back from one chat completion."""

    text: str
    model: str
    finish_reason: Optional[str]
    usage: dict = field(default_factory=dict)


class PartialAnswerError(MmcliError):
    """Wraps an error that struck after part of the answer had arrived."""

    def __init__(self, cause: MmcliError, partial: ChatResult) -> None:
        super().__init__(cause.what, cause.why, where=cause.where, hint=cause.hint)
        self.exit_code = cause.exit_code
        self.partial = partial


def _timeout(endpoint: Endpoint):
    import httpx2

    return httpx2.Timeout(endpoint.timeout, connect=min(CONNECT_TIMEOUT, endpoint.timeout))


def _openai_client(endpoint: Endpoint):
    import openai

    return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.require_key(),
                         timeout=_timeout(endpoint), max_retries=0)


def redact(text: str, endpoint: Endpoint) -> str:
    """`text` with the API key and the URL's password removed, whatever the server or library echoed back."""
    key = endpoint.api_key
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text.replace(endpoint.base_url, masked_url(endpoint.base_url))


def list_models(endpoint: Endpoint) -> list[str]:
    """Ids the endpoint serves (GET /models)."""
    client = _openai_client(endpoint)
    page = _with_retries(endpoint, lambda: client.models.list(), None)
    return [m.id for m in page.data]


def first_model(endpoint: Endpoint) -> str:
    """The first model the endpoint serves; used when no --model was given."""
    models = list_models(endpoint)
    if not models:
        raise RequestRejected("the endpoint serves no models", where=masked_url(endpoint.base_url),
                              hint="pass --model NAME")
    return models[0]


def server_healthy(root_url: str, timeout: float = 2.0) -> bool:
    """Whether `GET {root_url}/health` answers 200 (how a vLLM server says it is ready)."""
    import httpx2

    try:  # trust_env=False: a proxy from the environment must not answer for a local server
        with httpx2.Client(timeout=timeout, trust_env=False) as http:
            return http.get(f"{root_url}/health").status_code == 200
    except httpx2.HTTPError:
        return False


def chat(endpoint: Endpoint, request: dict, on_text: Optional[Callable[[str], None]] = None,
         status: Optional[StatusFn] = None) -> ChatResult:
    """Send one chat completion; stream it to `on_text` when the request asks to stream."""
    try:
        return _chat(endpoint, request, on_text, status)
    except RequestRejected as exc:
        if exc.status_code == 404:
            exc.hint = _served_models_hint(endpoint, request.get("model", "")) or exc.hint
        raise


def _served_models_hint(endpoint: Endpoint, model: str) -> str:
    try:
        served = list_models(endpoint)
    except MmcliError:
        return ""  # keep the hint the status code gave
    if model in served:
        return "the model exists; the server may not support this route"
    return "served models: " + (", ".join(served) or "none") + "; pass one with --model"


def _chat(endpoint: Endpoint, request: dict, on_text, status) -> ChatResult:
    client = _openai_client(endpoint)
    # The raw reply: the SDK's own parsing trusts the server and fails with AttributeError or
    # JSONDecodeError on bad replies; mmcli reads the bytes itself (mmcli.replies).
    raw = _with_retries(endpoint, lambda: client.chat.completions.with_raw_response.create(**request), status)
    response = raw.http_response
    model = request.get("model", "")
    if request.get("stream") and _is_event_stream(response):
        return _consume_stream(endpoint, response, model, on_text)
    return _whole_reply(endpoint, response, model, on_text)


def _is_event_stream(response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


def _whole_reply(endpoint: Endpoint, response, model: str, on_text) -> ChatResult:
    """A reply sent in one piece (also a server that ignored `stream`), checked."""
    try:
        body = _read_body(endpoint, response)
        piece = completion_piece(decode_json(body, "the reply"))
    except MmcliError as exc:
        raise _located(exc, endpoint) from None
    if on_text and piece.text:
        on_text(piece.text)
    return ChatResult(piece.text, piece.model or model, piece.finish_reason, piece.usage)


def _read_body(endpoint: Endpoint, response) -> bytes:
    import httpx2

    try:
        return response.read()
    except httpx2.TimeoutException:
        raise EndpointTimeout("the answer stopped arriving", f"no data for {endpoint.timeout:g} s",
                              hint="raise --timeout") from None
    except (httpx2.TransportError, httpx2.DecodingError) as exc:
        raise EndpointUnavailable("the server broke off its reply", redact(str(exc), endpoint),
                                  hint=BROKEN_REPLY_HINT) from None
    finally:
        response.close()


def _consume_stream(endpoint: Endpoint, response, model: str, on_text) -> ChatResult:
    """Read the SSE stream, passing text to `on_text`; any failure keeps what arrived (PartialAnswerError)."""
    import httpx2

    result = ChatResult("", model, None)
    pieces: list[str] = []
    state = {"done": False, "choices": False}
    try:
        for event, data in iter_sse(response.iter_bytes()):
            if data.strip() == b"[DONE]":
                state["done"] = True
                break
            piece = _stream_piece(event, data, endpoint)
            result.model = piece.model or result.model
            result.usage = piece.usage or result.usage
            result.finish_reason = piece.finish_reason or result.finish_reason
            state["choices"] = state["choices"] or piece.has_choice
            if piece.text:
                pieces.append(piece.text)
                if on_text:
                    on_text(piece.text)
        _check_stream_end(result, **state)
    except httpx2.TimeoutException:
        error: MmcliError = EndpointTimeout("the answer stopped arriving", f"no data for {endpoint.timeout:g} s",
                                            hint="raise --timeout")
    except (httpx2.TransportError, httpx2.DecodingError) as exc:
        error = EndpointUnavailable("the stream was cut", redact(str(exc), endpoint),
                                    hint="the server may have crashed; try again")
    except MmcliError as exc:
        error = exc
    else:
        result.text = "".join(pieces)
        return result
    finally:
        response.close()
    result.text = "".join(pieces)
    raise PartialAnswerError(_located(error, endpoint), result) from None


def _stream_piece(event: str, data: bytes, endpoint: Endpoint) -> Piece:
    obj = decode_json(data, "a stream event")
    message = error_message(obj) if isinstance(obj, dict) else None
    if event == "error" and message is None:
        message = summarise(data.decode("utf-8", "replace"), 200)
    if message is not None:
        raise EndpointUnavailable("the server reported an error mid-answer", redact(message, endpoint))
    return chunk_piece(obj)


def _check_stream_end(result: ChatResult, done: bool, choices: bool) -> None:
    # A finish reason means the answer is whole even if [DONE] never came; without one it is not.
    if result.finish_reason is not None:
        return
    if not choices:
        raise BadReply("the stream held no answer: no event carried 'choices'" if done
                       else "the stream ended before any answer arrived")
    raise EndpointUnavailable("the stream ended before the answer was complete",
                              "no finish reason" + ("" if done else " and no [DONE]"),
                              hint="the server may have crashed; try again")


def _located(error: MmcliError, endpoint: Endpoint) -> MmcliError:
    error.where = error.where or masked_url(endpoint.base_url)
    return error


def _with_retries(endpoint: Endpoint, call, status: Optional[StatusFn]):
    """Run `call`, retrying what may pass (dropped connections, 429, 500/502/503/504); map the rest to MmcliError."""
    import openai

    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call()
        except openai.APITimeoutError:
            raise EndpointTimeout("no answer in time", f"waited {endpoint.timeout:g} s",
                                  where=masked_url(endpoint.base_url),
                                  hint="raise --timeout, or lower --max-pixels to make the request lighter") from None
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            if attempt == RETRY_ATTEMPTS or not _worth_retrying(exc, endpoint):
                raise map_api_error(exc, endpoint) from None
            delay = _retry_delay(exc, attempt)
            if status:
                status(f"{_short_reason(exc)}; retrying in {delay:.1f} s ({attempt}/{RETRY_ATTEMPTS - 1})")
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises


def _worth_retrying(exc, endpoint: Endpoint) -> bool:
    code = getattr(exc, "status_code", None)
    if code is not None:
        return code in TRANSIENT_STATUS
    # Nothing listens on this machine's port: asking again 0.5 s later will not change that.
    return not (_refused(exc) and is_loopback(endpoint.base_url))


def _refused(exc) -> bool:
    import httpx2

    return isinstance(exc.__cause__, httpx2.ConnectError)


def _short_reason(exc) -> str:
    code = getattr(exc, "status_code", None)
    if code:
        return f"HTTP {code}"
    return "connection failed" if _refused(exc) else "the server broke off its reply"


def retry_after(response) -> Optional[float]:
    """Seconds a Retry-After header asks for, or None when absent or not a plain number of seconds."""
    header = response.headers.get("retry-after") if response is not None else None
    # delay-seconds is digits (RFC 9110); nan, inf, -1, 1e9 and HTTP dates are not trusted.
    match = re.fullmatch(r"\s*(\d{1,12}(?:\.\d+)?)\s*", header or "")
    return float(match.group(1)) if match else None


def _retry_delay(exc, attempt: int) -> float:
    seconds = retry_after(getattr(exc, "response", None))
    if seconds is not None and seconds <= RETRY_AFTER_CAP:
        return seconds
    return 0.5 * 2 ** (attempt - 1)


def _api_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("message"):
            return str(body["message"])
    response = getattr(exc, "response", None)
    try:
        text = response.text if response is not None else str(exc)
    except (UnicodeDecodeError, LookupError):  # a body in no encoding Python knows
        text = "an undecodable body"
    return summarise(text, 200) or "no details"


_HINTS = [
    (re.compile(r"At most (\d+) (image|video|audio)\(s\) may be provided", re.I),
     "send at most {0} {1}(s) per request, or restart the server with a higher limit "
     "(vLLM: --limit-mm-per-prompt '{{\"{1}\": N}}'; mmcli serve --max-images N)"),
    (re.compile(r"maximum context length|context length|too long|max_model_len", re.I),
     "the request does not fit the model's context: lower --max-pixels or send fewer images"),
    (re.compile(r"Failed to load image|cannot identify image", re.I),
     "the server could not read an image; check the input file"),
]


def map_api_error(exc, endpoint: Endpoint) -> MmcliError:
    """The MmcliError (with hint) for an openai SDK error."""
    import openai

    where = masked_url(endpoint.base_url)
    if isinstance(exc, openai.APIConnectionError):
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
    if isinstance(cause, (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError, httpx2.DecodingError)):
        return EndpointUnavailable("the server broke off its reply", why, where=where, hint=BROKEN_REPLY_HINT)
    return EndpointUnavailable("cannot reach the endpoint", why, where=where, hint=_unreachable_hint(endpoint))


def _server_error(code: int, message: str, where: str) -> MmcliError:
    if code in TRANSIENT_STATUS:
        return EndpointUnavailable(f"the server failed (HTTP {code})", message, where=where,
                                   hint="the server may be overloaded or crashed; try again later")
    if code == 501:
        return EndpointUnavailable("the server does not implement this request (HTTP 501)", message, where=where,
                                   hint="check that --base-url points at an OpenAI-compatible endpoint")
    return EndpointUnavailable(f"the server failed (HTTP {code})", message, where=where,
                               hint="this is not a passing failure: check the server's log and --base-url")


def _hint_for(code: int, message: str) -> str:
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


def _unreachable_hint(endpoint: Endpoint) -> str:
    dry_run = "; --dry-run shows what would be sent without a server"
    if not is_loopback(endpoint.base_url):
        return "check that the server is running and the URL is right (--base-url / --profile)"
    from urllib.parse import urlsplit

    port = urlsplit(endpoint.base_url).port or 80
    if endpoint.profile.name == "local":
        flag = "" if port == 8000 else f" --port {port}"
        return (f"start one with `mmcli serve qwen2.5-vl{flag}` (needs vLLM: pip install 'mmcli[serve]'), "
                "or pick another endpoint with --base-url / --profile" + dry_run)
    return f"nothing listens on port {port} of this machine: start the server or fix --base-url" + dry_run


def fetch_url(url: str, max_bytes: int, timeout: float, max_redirects: int = 5) -> tuple[bytes, str]:
    """Download `url` (http/https only, every redirect re-checked) up to `max_bytes`; (data, final URL)."""
    import httpx2

    current = url
    with httpx2.Client(timeout=httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
                       follow_redirects=False) as http:
        for _ in range(max_redirects + 1):
            _check_media_url(current, url)
            try:
                with http.stream("GET", current) as response:
                    if response.is_redirect:
                        current = str(response.url.join(response.headers.get("location", "")))
                        continue
                    if response.status_code >= 400:
                        raise MediaError("cannot download media", f"HTTP {response.status_code}", where=url)
                    return _read_capped(response, max_bytes, url), current
            except httpx2.TimeoutException:
                raise MediaError("cannot download media", f"no answer within {timeout:g} s", where=url,
                                 hint="check the URL, or download the file and pass its path") from None
            except httpx2.TransportError as exc:
                raise MediaError("cannot download media", str(exc) or type(exc).__name__, where=url,
                                 hint="check the URL, or download the file and pass its path") from None
    raise MediaError("cannot download media", f"more than {max_redirects} redirects", where=url)


def _check_media_url(current: str, original: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(current)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError("refusing to download media", f"only http and https URLs are fetched, got {current!r}",
                         where=original)


def _read_capped(response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MediaError("media too large", f"{int(declared):,} bytes, over the {max_bytes:,}-byte limit", where=url)
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise MediaError("media too large", f"over the {max_bytes:,}-byte limit", where=url)
        chunks.append(chunk)
    return b"".join(chunks)
