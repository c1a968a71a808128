"""An embeddings reply, checked: `data[i].embedding` lists of numbers, one per input, in input order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import BadReply
from ..switches import finite
from .replies import error_message

_USAGE_KEYS = ("prompt_tokens", "total_tokens")


@dataclass
class Embeddings:
    """What one POST /embeddings returned."""

    vectors: list[list[float]]
    model: Optional[str] = None
    usage: dict = field(default_factory=dict)


def embeddings_reply(data: Any, expected: int) -> Embeddings:
    """The vectors of an embeddings reply (sorted by `index`), or BadReply naming what is wrong."""
    if not isinstance(data, dict):
        raise BadReply("the reply is not a JSON object")
    message = error_message(data)
    if message is not None and "data" not in data:
        raise BadReply(f"the server reported an error instead of embeddings: {message}")
    rows = data.get("data")
    if not isinstance(rows, list):
        raise BadReply("the reply has no 'data' list of embeddings")
    if len(rows) != expected:
        raise BadReply(f"the reply holds {len(rows)} embedding(s) for {expected} input(s)")
    ordered: list[Optional[list[float]]] = [None] * expected
    for position, row in enumerate(rows):
        index, vector = _row(row, position)
        if not 0 <= index < expected or ordered[index] is not None:
            raise BadReply(f"data[{position}] has index {index}, not one of 0..{expected - 1} used once")
        ordered[index] = vector
    dims = {len(v) for v in ordered if v is not None}
    if len(dims) > 1:
        raise BadReply(f"the embeddings differ in length: {sorted(dims)}")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    usage = {k: usage[k] for k in _USAGE_KEYS if isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool)}
    model = data.get("model") if isinstance(data.get("model"), str) else None
    return Embeddings([v for v in ordered if v is not None], model, usage)


def _row(row: Any, position: int) -> tuple[int, list[float]]:
    if not isinstance(row, dict):
        raise BadReply(f"data[{position}] is not an object")
    index = row.get("index", position)
    if not isinstance(index, int) or isinstance(index, bool):
        raise BadReply(f"data[{position}] has no whole-number 'index'")
    vector = row.get("embedding")
    if isinstance(vector, str):
        raise BadReply(f"data[{position}] is base64, though the request asked for floats")
    if not isinstance(vector, list) or not vector:
        raise BadReply(f"data[{position}] has no 'embedding' list")
    if not all(finite(x) is not None for x in vector):  # a whole number too large for a float too
        raise BadReply(f"data[{position}]'s embedding holds something other than finite numbers")
    return index, [float(x) for x in vector]
