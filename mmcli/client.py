"""Talking to the endpoint: chat and embedding requests, transcriptions, model listing, retries."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .apierrors import (BROKEN_REPLY_HINT, RETRY_AFTER_CAP, TRANSIENT_STATUS, map_api_error, redact,
                        retry_after)
from .config import Endpoint
from .urls import is_loopback, masked_url
from .errors import EndpointTimeout, EndpointUnavailable, MmcliError, RequestRejected
from .replies import (BadReply, Piece, chunk_piece, completion_piece, decode_json, error_message, iter_sse,
                      model_entries, summarise)

RETRY_ATTEMPTS = 3
CONNECT_TIMEOUT = 10.0
# Body fields of vLLM's own that the openai package takes only through extra_body.
EXTRA_BODY_FIELDS = ("media_io_kwargs", "structured_outputs")
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
        self.cause = cause  # the error of its own class, for callers that tell errors apart by class


def http_timeout(endpoint: Endpoint):
    """The SDK's timeout for this endpoint: --timeout, with a shorter connect."""
    import httpx2

    return httpx2.Timeout(endpoint.timeout, connect=min(CONNECT_TIMEOUT, endpoint.timeout))


_CLIENTS: dict = {}  # one client (and connection pool) per endpoint, shared by the senders of a run
_CLIENTS_LOCK = threading.Lock()


def _openai_client(endpoint: Endpoint):
    import openai

    key = endpoint.require_key()
    # Building a client loads a TLS context (tens of ms with the GIL held); many-job runs reuse one.
    with _CLIENTS_LOCK:
        client = _CLIENTS.get((endpoint.base_url, key, endpoint.timeout))
        if client is None:
            client = openai.OpenAI(base_url=endpoint.base_url, api_key=key, timeout=http_timeout(endpoint),
                                   max_retries=0)
            _CLIENTS[(endpoint.base_url, key, endpoint.timeout)] = client
        return client


def list_models(endpoint: Endpoint) -> list[str]:
    """Ids the endpoint serves (GET /models)."""
    return [entry["id"] for entry in list_models_detailed(endpoint)]


def list_models_detailed(endpoint: Endpoint) -> list[dict]:
    """Each served model as {"id", "root", "max_model_len"} (GET /models); vLLM gives all three,
    other servers may give only the id (the rest is None)."""
    client = _openai_client(endpoint)
    raw = _with_retries(endpoint, lambda: client.models.with_raw_response.list(), None)
    try:
        return model_entries(decode_json(_read_body(endpoint, raw.http_response), "the model list"))
    except MmcliError as exc:
        raise located(exc, endpoint) from None


def chat(endpoint: Endpoint, request: dict, on_text: Optional[Callable[[str], None]] = None,
         status: Optional[StatusFn] = None, pacer=None) -> ChatResult:
    """Send one chat completion; stream it to `on_text` when the request asks to stream.

    `pacer` (many-job runs) is shared by every sender: each attempt waits for it, and a 429 pauses it."""
    try:
        return _chat(endpoint, request, on_text, status, pacer)
    except RequestRejected as exc:
        if exc.status_code == 404:
            exc.hint = _served_models_hint(endpoint, request.get("model", "")) or exc.hint
        raise


POOLING_HINT = "start the server with --runner pooling (mmcli serve MODEL --embed)"
# What servers say when the model they serve cannot embed: vLLM with a generative model answers 404
# (no /v1/embeddings route) or 501 "The model does not support Embeddings API"; others a 400.
_NOT_POOLING = re.compile(r"embedding|pooling|runner|does not support|not supported|task", re.I)


def embed(endpoint: Endpoint, request: dict, status: Optional[StatusFn] = None) -> tuple[list[list[float]], dict]:
    """Send one POST /embeddings; (vectors in input order, usage). A model that cannot embed is exit 4."""
    from .embedding.replies import embeddings_reply

    messages = request.get("messages") or []
    expected = len(messages) if messages and isinstance(messages[0], list) else 1
    try:
        response = _with_retries(endpoint, lambda: _post_embeddings(endpoint, request), status)
        data = decode_json(_read_body(endpoint, response), "the reply")
        reply = embeddings_reply(data, expected)
        return reply.vectors, reply.usage
    except RequestRejected as exc:
        raise _not_pooling(exc, endpoint, request.get("model", "")) from None
    except EndpointUnavailable as exc:
        if "HTTP 501" in exc.what and _NOT_POOLING.search(exc.why):
            raise _rejected_embeddings(exc, 501) from None
        raise located(exc, endpoint) from None
    except MmcliError as exc:
        raise located(exc, endpoint) from None


def _post_embeddings(endpoint: Endpoint, request: dict):
    import httpx2

    # The SDK's embeddings.create() insists on `input`; vLLM's chat form sends `messages` instead.
    return _openai_client(endpoint).post("/embeddings", cast_to=httpx2.Response, body=request)


def _not_pooling(exc: RequestRejected, endpoint: Endpoint, model: str) -> MmcliError:
    if exc.status_code == 400 and _NOT_POOLING.search(exc.why):
        return _rejected_embeddings(exc, 400)
    if exc.status_code == 404:
        try:
            served = list_models(endpoint)
        except MmcliError:
            return exc
        if model in served or model == "(first served model)":
            return _rejected_embeddings(exc, 404, "the server has no embeddings route for this model")
        exc.hint = "served models: " + (", ".join(served) or "none") + "; pass one with --model"
    return exc


def _rejected_embeddings(exc: MmcliError, code: int, why: str = "") -> RequestRejected:
    error = RequestRejected(f"the model cannot make embeddings (HTTP {code})", why or exc.why, where=exc.where,
                            hint=POOLING_HINT)
    error.status_code = code
    return error


def _served_models_hint(endpoint: Endpoint, model: str) -> str:
    try:
        served = list_models(endpoint)
    except MmcliError:
        return ""  # keep the hint the status code gave
    if model in served:
        return "the model exists; the server may not support this route"
    return "served models: " + (", ".join(served) or "none") + "; pass one with --model"


def _chat(endpoint: Endpoint, request: dict, on_text, status, pacer=None) -> ChatResult:
    client = _openai_client(endpoint)
    # The raw reply: the SDK's own parsing trusts the server and fails with AttributeError or
    # JSONDecodeError on bad replies; mmcli reads the bytes itself (mmcli.replies).
    body = {k: v for k, v in request.items() if k not in EXTRA_BODY_FIELDS}
    extra = {k: v for k, v in request.items() if k in EXTRA_BODY_FIELDS} or None
    raw = _with_retries(endpoint, lambda: client.chat.completions.with_raw_response.create(**body, extra_body=extra),
                        status, pacer)
    response = raw.http_response
    model = request.get("model", "")
    if request.get("stream") and _is_event_stream(response):
        return _consume_stream(endpoint, response, model, on_text)
    return _whole_reply(endpoint, response, model, on_text)


def transcribe(endpoint: Endpoint, audio: bytes, filename: str, fields: dict,
               status: Optional[StatusFn] = None) -> object:
    """POST /audio/transcriptions as multipart (file + fields); the reply parsed as JSON, or its text
    for the plain formats (text, srt, vtt)."""
    client = _openai_client(endpoint)
    sent = {key: value for key, value in fields.items() if value is not None}
    raw = _with_retries(endpoint, lambda: client.audio.transcriptions.with_raw_response.create(
        file=(filename, audio, "audio/wav"), **sent), status)
    try:
        body = _read_body(endpoint, raw.http_response)
        if sent.get("response_format") in ("text", "srt", "vtt"):
            return body.decode("utf-8", "replace")
        return decode_json(body, "the transcription")
    except MmcliError as exc:
        raise located(exc, endpoint) from None


def _is_event_stream(response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


def _whole_reply(endpoint: Endpoint, response, model: str, on_text) -> ChatResult:
    """A reply sent in one piece (also a server that ignored `stream`), checked."""
    try:
        body = _read_body(endpoint, response)
        piece = completion_piece(decode_json(body, "the reply"))
    except MmcliError as exc:
        raise located(exc, endpoint) from None
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
    raise PartialAnswerError(located(error, endpoint), result) from None


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


def located(error: MmcliError, endpoint: Endpoint) -> MmcliError:
    """`error` with the endpoint as its place, and nothing of the key in what the server sent."""
    error.where = error.where or masked_url(endpoint.base_url)
    error.why = redact(error.why, endpoint)
    return error


def _with_retries(endpoint: Endpoint, call, status: Optional[StatusFn], pacer=None):
    """Run `call`, retrying what may pass (dropped connections, 429, 500/502/503/504); map the rest to MmcliError."""
    import openai

    for attempt in range(1, RETRY_ATTEMPTS + 1):
        if pacer is not None:
            pacer.wait()
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
            if pacer is not None and getattr(exc, "status_code", None) == 429:
                pacer.pause(delay)  # a rate limit holds back every sender, not only this one
            if status:
                status(f"{_short_reason(exc)}; retrying in {delay:.1f} s ({attempt}/{RETRY_ATTEMPTS - 1})")
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises


def _worth_retrying(exc, endpoint: Endpoint) -> bool:
    code = getattr(exc, "status_code", None)
    if code is not None:
        return code in TRANSIENT_STATUS
    import httpx2

    if isinstance(exc.__cause__, httpx2.DecodingError):
        return False  # a body that cannot be decoded will not decode next time
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


def _retry_delay(exc, attempt: int) -> float:
    seconds = retry_after(getattr(exc, "response", None))
    if seconds is not None and seconds <= RETRY_AFTER_CAP:
        return seconds
    return 0.5 * 2 ** (attempt - 1)
