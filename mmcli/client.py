"""The only code that talks HTTP: chat requests, model listing and media downloads."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .config import Endpoint, is_loopback
from .errors import EndpointTimeout, EndpointUnavailable, MediaError, MmcliError, RequestRejected

RETRY_ATTEMPTS = 3
RETRY_AFTER_CAP = 30.0
CONNECT_TIMEOUT = 10.0
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
    """`text` with the API key removed, whatever the server echoed back."""
    key = endpoint.api_key
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    return text


def list_models(endpoint: Endpoint) -> list[str]:
    """Ids the endpoint serves (GET /models)."""
    client = _openai_client(endpoint)
    page = _with_retries(endpoint, lambda: client.models.list(), None)
    return [m.id for m in page.data]


def list_models_detailed(endpoint: Endpoint) -> list[dict]:
    """Each served model's id, and vLLM's root (what it loaded) and max_model_len when given."""
    client = _openai_client(endpoint)
    page = _with_retries(endpoint, lambda: client.models.list(), None)
    models = []
    for entry in page.data:
        extra = getattr(entry, "model_extra", None) or {}
        root, max_len = extra.get("root"), extra.get("max_model_len")
        models.append({"id": entry.id, "root": root if isinstance(root, str) else None,
                       "max_model_len": max_len if isinstance(max_len, int) and max_len > 0 else None})
    return models


def first_model(endpoint: Endpoint) -> str:
    """The first model the endpoint serves; used when no --model was given."""
    models = list_models(endpoint)
    if not models:
        raise RequestRejected("the endpoint serves no models", where=endpoint.base_url,
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
    if not request.get("stream"):
        response = _with_retries(endpoint, lambda: client.chat.completions.create(**request), status)
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        if on_text and text:
            on_text(text)
        return ChatResult(text, response.model, choice.finish_reason if choice else None, _usage(response))
    stream = _with_retries(endpoint, lambda: client.chat.completions.create(**request), status)
    return _consume_stream(endpoint, stream, request.get("model", ""), on_text)


def _consume_stream(endpoint: Endpoint, stream, model: str, on_text) -> ChatResult:
    import httpx2
    import openai

    result = ChatResult("", model, None)
    pieces: list[str] = []
    try:
        for chunk in stream:
            result.model = chunk.model or result.model
            if chunk.usage:
                result.usage = _usage(chunk)
            for choice in chunk.choices:
                delta = choice.delta.content if choice.delta else None
                if delta:
                    pieces.append(delta)
                    if on_text:
                        on_text(delta)
                if choice.finish_reason:
                    result.finish_reason = choice.finish_reason
    except (httpx2.TimeoutException, openai.APITimeoutError):
        result.text = "".join(pieces)
        raise PartialAnswerError(EndpointTimeout("the answer stopped arriving", where=endpoint.base_url,
                                                 why=f"no data for {endpoint.timeout:g} s",
                                                 hint="raise --timeout"), result) from None
    except (httpx2.TransportError, openai.APIConnectionError) as exc:
        result.text = "".join(pieces)
        raise PartialAnswerError(EndpointUnavailable("the stream was cut", redact(str(exc), endpoint),
                                                     where=endpoint.base_url,
                                                     hint="the server may have crashed; try again"), result) from None
    except openai.APIError as exc:
        result.text = "".join(pieces)
        raise PartialAnswerError(EndpointUnavailable("the server reported an error mid-answer",
                                                     redact(_api_message(exc), endpoint),
                                                     where=endpoint.base_url), result) from None
    result.text = "".join(pieces)
    if result.finish_reason is None:
        raise PartialAnswerError(EndpointUnavailable("the stream ended before the answer was complete",
                                                     where=endpoint.base_url,
                                                     hint="the server may have crashed; try again"), result)
    return result


def _usage(obj) -> dict:
    usage = getattr(obj, "usage", None)
    if usage is None:
        return {}
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: getattr(usage, k) for k in keys if getattr(usage, k, None) is not None}


def _with_retries(endpoint: Endpoint, call, status: Optional[StatusFn]):
    """Run `call`, retrying connection failures, 429 and 5xx; map what remains to MmcliError."""
    import openai

    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call()
        except openai.APITimeoutError:
            raise EndpointTimeout("no answer in time", f"waited {endpoint.timeout:g} s", where=endpoint.base_url,
                                  hint="raise --timeout, or lower --max-pixels to make the request lighter") from None
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
            delay = _retry_delay(exc, attempt)
            if attempt == RETRY_ATTEMPTS:
                raise map_api_error(exc, endpoint) from None
            if status:
                status(f"{_short_reason(exc)}; retrying in {delay:.1f} s ({attempt}/{RETRY_ATTEMPTS - 1})")
            time.sleep(delay)
        except openai.APIStatusError as exc:
            raise map_api_error(exc, endpoint) from None
    raise AssertionError("unreachable")  # the loop always returns or raises


def _short_reason(exc) -> str:
    code = getattr(exc, "status_code", None)
    return f"HTTP {code}" if code else "connection failed"


def _retry_delay(exc, attempt: int) -> float:
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(max(float(header), 0.0), RETRY_AFTER_CAP)
        except ValueError:
            pass  # an HTTP date: fall back to the backoff below
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
    text = response.text if response is not None else str(exc)
    return _plain_first_line(text)


def _plain_first_line(text: str) -> str:
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    if title:
        text = title.group(1)
    text = re.sub(r"<[^>]+>", " ", text)
    line = " ".join(text.split())
    return line[:200] or "no details"


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

    where = endpoint.base_url
    if isinstance(exc, openai.APIConnectionError):
        return EndpointUnavailable("cannot reach the endpoint", redact(str(exc.__cause__ or exc), endpoint),
                                   where=where, hint=_unreachable_hint(endpoint))
    code = getattr(exc, "status_code", 0)
    message = redact(_api_message(exc), endpoint)
    if code >= 500:
        return EndpointUnavailable(f"the server failed (HTTP {code})", message, where=where,
                                   hint="the server may be overloaded or crashed; try again later")
    hint = _hint_for(code, message)
    if code == 404 and not where.rstrip("/").endswith("/v1"):
        hint = f"OpenAI-compatible endpoints usually end in /v1: try --base-url {where}/v1"
    error = RequestRejected(f"request rejected (HTTP {code})", message, where=where, hint=hint)
    error.status_code = code
    return error


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
    if endpoint.profile.name == "local" and is_loopback(endpoint.base_url):
        from urllib.parse import urlsplit

        port = urlsplit(endpoint.base_url).port or 80
        flag = "" if port == 8000 else f" --port {port}"
        return (f"start one with `mmcli serve qwen2.5-vl{flag}` (needs vLLM: pip install 'mmcli[serve]'), "
                "or pick another endpoint with --base-url / --profile")
    return "check that the server is running and the URL is right (--base-url / --profile)"


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
