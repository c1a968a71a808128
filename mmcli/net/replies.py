"""What an endpoint sent back, checked: a chat completion body or stream event becomes plain values or BadReply.

The openai SDK builds its response objects without validating them, so a server that answers with
HTML, cut-off JSON or the wrong shapes would surface as AttributeError or JSONDecodeError deep in
the caller. Everything a server sends is read here, as bytes, and checked before it is used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

from ..errors import BadReply
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class Piece:
    """What one completion body or stream event carried."""

    text: str = ""
    model: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: dict = field(default_factory=dict)
    has_choice: bool = False
    progress: bool = False  # it carried something of the answer, not an empty keep-alive


# Parts of a delta that are the answer being written though they are not its text: a reasoning model's
# thinking, a tool call being built.
_PROGRESS_KEYS = ("reasoning_content", "reasoning", "tool_calls", "function_call")


def summarise(text: str, limit: int = 120) -> str:
    """One short plain line for `text`: an HTML page's title, tags dropped, whitespace folded."""
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    if title:
        text = title.group(1)
    text = re.sub(r"<[^>]+>", " ", text)
    line = " ".join(text.split())
    return (line[:limit] + "...") if len(line) > limit else line


def decode_json(body: bytes, what: str) -> Any:
    """`body` parsed as JSON; BadReply saying what is wrong with it (`what`: 'the reply', 'a stream event')."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadReply(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadReply(f"{what} is empty")
    try:
        return json.loads(text)
    except ValueError:
        pass
    if text.lstrip().startswith("data:"):
        raise BadReply(f"{what} is an event stream, not JSON, though the request did not ask to stream")
    if re.match(r"\s*<", text):
        raise BadReply(f"{what} is an HTML page, not JSON: {summarise(text) or 'no title'}") from None
    raise BadReply(f"{what} is not valid JSON (cut off?): {summarise(text, 60)}") from None


def completion_piece(data: Any) -> Piece:
    """The answer in a chat.completion object, or BadReply naming the field that is wrong."""
    obj = _object(data, "the reply")
    choices = _choices(obj, "the reply")
    if not choices:
        raise BadReply("'choices' is empty: the reply holds no answer")
    choice = _object(choices[0], "choices[0]")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise BadReply("choices[0] has no 'message' object")
    piece = Piece(text=_content(message.get("content"), "the message content"), has_choice=True)
    piece.finish_reason = _optional_str(choice.get("finish_reason"))
    _fill_common(piece, obj)
    return piece


def chunk_piece(data: Any) -> Piece:
    """The text, finish reason, model and usage in one chat.completion.chunk, or BadReply."""
    obj = _object(data, "a stream event")
    choices = _choices(obj, "a stream event")
    piece = Piece()
    for i, raw in enumerate(choices):
        choice = _object(raw, f"a stream event's choices[{i}]")
        delta = choice.get("delta")
        if delta is not None and not isinstance(delta, dict):
            raise BadReply(f"a stream event's 'delta' is {_kind(delta)}, not an object")
        piece.text += _content((delta or {}).get("content"), "a stream event's content")
        piece.finish_reason = _optional_str(choice.get("finish_reason")) or piece.finish_reason
        piece.has_choice = True
        piece.progress = piece.progress or any((delta or {}).get(key) for key in _PROGRESS_KEYS)
    _fill_common(piece, obj)
    piece.progress = piece.progress or bool(piece.text or piece.finish_reason or piece.usage)
    return piece


def model_entries(data: Any) -> list[dict]:
    """{"id", "root", "max_model_len"} for each model in a GET /models reply, or BadReply."""
    obj = _object(data, "the model list")
    models = obj.get("data")
    if not isinstance(models, list):
        raise BadReply(f"the model list's 'data' is {_kind(models)}, not a list")
    entries = []
    for i, raw in enumerate(models):
        model = _object(raw, f"the model list's data[{i}]")
        if not _optional_str(model.get("id")):
            raise BadReply(f"the model list's data[{i}] has no 'id'")
        length = model.get("max_model_len")
        valid_length = isinstance(length, int) and not isinstance(length, bool) and length > 0
        entries.append({"id": model["id"], "root": _optional_str(model.get("root")),
                        "max_model_len": length if valid_length else None})
    return entries


def error_message(obj: dict) -> Optional[str]:
    """The message of an error object sent where an answer was expected, or None when it is not one."""
    error = obj.get("error")
    if error is None or "choices" in obj:
        return None
    if isinstance(error, dict):
        error = error.get("message") or json.dumps(error)
    return summarise(str(error), 200) or "no details"


def iter_sse(chunks: Iterable[bytes]) -> Iterator[tuple[str, bytes]]:
    """(event name, data) for each server-sent event in a byte stream; data lines joined with newlines."""
    buffer = b""
    event, data = "", []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = re.split(rb"\r\n|\r|\n", buffer)
        for line in lines:
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = "", []
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode("utf-8", "replace")
    if buffer.startswith(b"data:"):
        data.append(buffer[5:].removeprefix(b" "))
    if data:  # a last event without its blank line still counts
        yield event, b"\n".join(data)


def _object(value: Any, what: str) -> dict:
    if isinstance(value, dict):
        message = error_message(value)
        if message is not None:
            raise BadReply(f"the server reported an error instead of an answer: {message}")
        return value
    raise BadReply(f"{what} is {_kind(value)}, not a JSON object")


def _choices(obj: dict, what: str) -> list:
    if "choices" not in obj:
        raise BadReply(f"{what} has no 'choices'")
    choices = obj["choices"]
    if not isinstance(choices, list):
        raise BadReply(f"{what}'s 'choices' is {_kind(choices)}, not a list")
    return choices


def _content(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadReply(f"{what} is {_kind(value)}, not text")
    return value


def _optional_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _fill_common(piece: Piece, obj: dict) -> None:
    piece.model = _optional_str(obj.get("model"))
    usage = obj.get("usage")
    if isinstance(usage, dict):  # counts of another type are dropped, not trusted
        piece.usage = {k: usage[k] for k in _USAGE_KEYS
                       if isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool)}


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
