"""Talking to the endpoint: chat and embedding requests, transcriptions, model listing, retries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from .apierrors import BROKEN_REPLY_HINT, message_hint, redact
from ..settings import Endpoint
from ..urls import masked_url
from ..errors import (BadReply, EndpointTimeout, EndpointUnavailable, MmcliError, PartialAnswerError,
                      RequestRejected)
from .replies import (Piece, chunk_piece, completion_piece, decode_json, error_message, iter_sse,
                      model_entries, summarise)
from .transport import MAX_REPLY_BYTES, read_limited, request_deadline, send, send_read

StatusFn = Callable[[str], None]


@dataclass
class ChatResult:
    """What came back from one chat completion."""

    text: str
    model: str
    finish_reason: Optional[str]
    usage: dict = field(default_factory=dict)


def list_models(endpoint: Endpoint) -> list[str]:
    """Ids the endpoint serves (GET /models)."""
    return [entry["id"] for entry in list_models_detailed(endpoint)]


def list_models_detailed(endpoint: Endpoint) -> list[dict]:
    """Each served model as {"id", "root", "max_model_len"} (GET /models); vLLM gives all three,
    other servers may give only the id (the rest is None)."""
    _, body = send_read(endpoint, "GET", "/models")
    try:
        return model_entries(decode_json(body, "the model list"))
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
    from .embeddings import embeddings_reply

    messages = request.get("messages") or []
    expected = len(messages) if messages and isinstance(messages[0], list) else 1
    try:
        # Not the SDK's embeddings.create(): it insists on `input`, and vLLM's chat form sends `messages`.
        _, body = send_read(endpoint, "POST", "/embeddings", json=request, status=status)
        data = decode_json(body, "the reply")
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


NO_TRANSCRIPTION_HINT = ("this server has no transcription route for this model: serve a speech-to-text model, "
                         "e.g. Whisper")


def _served_models_hint(endpoint: Endpoint, model: str,
                        no_route: str = "the model exists; the server may not support this route") -> str:
    try:
        served = list_models(endpoint)
    except MmcliError:
        return ""  # keep the hint the status code gave
    if model in served or not model:
        return no_route
    return "served models: " + (", ".join(served) or "none") + "; pass one with --model"


def _chat(endpoint: Endpoint, request: dict, on_text, status, pacer=None) -> ChatResult:
    # The raw reply: mmcli reads the bytes itself (mmcli.net.replies), trusting nothing the server sends.
    model = request.get("model", "")
    if not request.get("stream"):
        _, body = send_read(endpoint, "POST", "/chat/completions", json=request, status=status, pacer=pacer)
        return _whole_reply(endpoint, body, model, on_text)
    response = send(endpoint, "POST", "/chat/completions", json=request, status=status, pacer=pacer)
    if _is_event_stream(response):
        return _consume_stream(endpoint, response, model, on_text)
    return _whole_reply(endpoint, _read_body(endpoint, response), model, on_text)  # the server did not stream


def transcribe(endpoint: Endpoint, audio: bytes, filename: str, fields: dict,
               status: Optional[StatusFn] = None) -> object:
    """POST /audio/transcriptions as multipart (file + fields); the reply parsed as JSON, or its text
    for the plain formats (text, srt, vtt)."""
    sent = {key: value for key, value in fields.items() if value is not None}
    try:
        _, body = send_read(endpoint, "POST", "/audio/transcriptions",
                            files={"file": (filename, audio, "audio/wav")},
                            data={k: str(v) for k, v in sent.items()}, status=status)
    except RequestRejected as exc:
        if getattr(exc, "status_code", None) == 413:  # the generic hint speaks of images
            exc.hint = "the audio piece is over the endpoint's upload limit: lower --max-upload-mb to send smaller pieces"
        elif getattr(exc, "status_code", None) == 404:  # the generic hint blames --model even when it is served
            exc.hint = _served_models_hint(endpoint, str(sent.get("model") or ""), NO_TRANSCRIPTION_HINT) or exc.hint
        raise
    try:
        if sent.get("response_format") in ("text", "srt", "vtt"):
            return body.decode("utf-8", "replace")
        return decode_json(body, "the transcription")
    except MmcliError as exc:
        raise located(exc, endpoint) from None


def _is_event_stream(response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


def _whole_reply(endpoint: Endpoint, body: bytes, model: str, on_text) -> ChatResult:
    """A reply sent in one piece (also a server that ignored `stream`), checked."""
    try:
        piece = completion_piece(decode_json(body, "the reply"))
    except MmcliError as exc:
        raise located(exc, endpoint) from None
    if on_text and piece.text:
        on_text(piece.text)
    return ChatResult(piece.text, piece.model or model, piece.finish_reason, piece.usage)


def _read_body(endpoint: Endpoint, response) -> bytes:
    import httpx2

    try:
        return read_limited(response, MAX_REPLY_BYTES)
    except httpx2.TimeoutException:
        # the deadline the request started holds for the whole reply: a dripped body ends at it too
        error: MmcliError = EndpointTimeout("no answer in time",
                                            f"the reply was not whole within {endpoint.timeout:g} s",
                                            hint="raise --timeout")
    except (httpx2.TransportError, httpx2.DecodingError) as exc:
        error = EndpointUnavailable("the server broke off its reply", redact(str(exc), endpoint),
                                    hint=BROKEN_REPLY_HINT)
    except MmcliError as exc:  # too large
        error = exc
    finally:
        response.close()
    raise located(error, endpoint) from None


def _consume_stream(endpoint: Endpoint, response, model: str, on_text) -> ChatResult:
    """Read the SSE stream, passing text to `on_text`; any failure keeps what arrived (PartialAnswerError)."""
    import httpx2

    result = ChatResult("", model, None)
    pieces: list[str] = []
    state = {"done": False, "choices": False}
    # Each new part of the answer may take --timeout: comments (": keepalive"), bytes dripped one by one and
    # events with nothing in them (an empty delta) do not keep a stalled answer alive, and a long answer
    # that keeps coming is never cut.
    deadline = request_deadline(endpoint)
    deadline.start(endpoint.timeout)
    try:
        for event, data in iter_sse(_capped(response.iter_bytes())):
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
            if piece.progress:
                deadline.start(endpoint.timeout)  # the wait for the next part, once this one is shown
        _check_stream_end(result, **state)
    except httpx2.TimeoutException:
        error: MmcliError = EndpointTimeout("the answer stopped arriving",
                                            f"no new part of it for {endpoint.timeout:g} s", hint="raise --timeout")
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


def _capped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream's bytes, up to MAX_REPLY_BYTES once decoded."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_REPLY_BYTES:  # (a stream can be a gzip bomb too)
            raise BadReply(f"the reply is too large: over {MAX_REPLY_BYTES >> 20} MB once decoded",
                           hint="the server may be broken or hostile; check --base-url")
        yield chunk


def _stream_piece(event: str, data: bytes, endpoint: Endpoint) -> Piece:
    obj = decode_json(data, "a stream event")
    message = error_message(obj) if isinstance(obj, dict) else None
    if event == "error" and message is None:
        message = summarise(data.decode("utf-8", "replace"), 200)
    if message is not None:
        raise EndpointUnavailable("the server reported an error mid-answer", redact(message, endpoint),
                                  hint=message_hint(message))
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
