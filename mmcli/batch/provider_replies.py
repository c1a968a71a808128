"""The Batch API's replies, read as bytes and checked before anything is used or recorded.

The openai SDK builds its objects without validating them: a server answering HTML, `[]` or an object
without an id would come back as a string, a list or an object whose id is None, and a None recorded as
a batch id is a submit that can never be resumed. Every reply of files.create, batches.create,
batches.retrieve and batches.list goes through here instead: a JSON object with a real id, or BadReply
(exit 5) and nothing recorded.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Optional

from ..errors import BadReply

if TYPE_CHECKING:
    from ..settings import Endpoint

# Provider ids (file-abc, batch_abc, ...): plain characters only, so an id is safe in a URL path, a
# file, a terminal and a manifest.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
_STATUS = re.compile(r"[a-z_]{1,40}")
MAX_REQUESTS = 100_000_000  # far above any provider's requests per batch (OpenAI: 50,000)
HINT = ("the server answered, but not as the OpenAI Batch API does: check that --base-url points at a "
        "provider with the Batch API (files and batches), and the server's log")


def bad(why: str, endpoint: "Endpoint") -> BadReply:
    """The error for a Batch API reply that cannot be used (exit 5)."""
    from ..urls import masked_url

    return BadReply(why, where=masked_url(endpoint.base_url), hint=HINT)


def reply_object(raw, what: str, endpoint: "Endpoint") -> dict:
    """The JSON object of a raw SDK reply (`with_raw_response`), or BadReply naming `what` it was."""
    try:
        data = json.loads(raw.http_response.content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise bad(f"the answer to {what} is not a JSON object", endpoint)
    return data


def object_id(data: dict, what: str, endpoint: "Endpoint") -> str:
    """The `id` of a reply object, when it is a real id."""
    value = data.get("id")
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise bad(f"the {what} the server made has no usable id", endpoint)
    return value


def optional_id(data: dict, key: str, endpoint: "Endpoint") -> Optional[str]:
    """An id field that may be absent (a batch's output or error file), checked when present."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise bad(f"the batch's {key} is not a usable id", endpoint)
    return value


def batch_row(name: str, data: dict, endpoint: "Endpoint") -> dict:
    """One status row from a batch object: part, id, state, counts, output ids, the provider's reasons."""
    status = data.get("status")
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise bad("the batch has no status", endpoint)
    return {"file": name, "batch_id": object_id(data, "batch", endpoint), "status": status,
            **_counts(data.get("request_counts"), endpoint),
            "output_file_id": optional_id(data, "output_file_id", endpoint),
            "error_file_id": optional_id(data, "error_file_id", endpoint),
            "reasons": _reasons(data.get("errors"), endpoint)}


def retrieve(client, endpoint: "Endpoint", name: str, batch_id: str) -> dict:
    """The status row of one batch of part `name`, asked of the provider (its answer must be that batch)."""
    from ..net.sdk import sdk_errors

    with sdk_errors(endpoint, f"batch {batch_id}"):
        raw = client.batches.with_raw_response.retrieve(batch_id)
    row = batch_row(name, reply_object(raw, f"batch {batch_id}", endpoint), endpoint)
    if row["batch_id"] != batch_id:
        raise bad(f"asked for batch {batch_id}, the server answered with {row['batch_id']}", endpoint)
    return row


def _counts(counts: object, endpoint: "Endpoint") -> dict:
    """The batch's request counts (None where not given), refused when no batch could have them."""
    counts = counts if isinstance(counts, dict) else {}
    number = {key: counts.get(key) if isinstance(counts.get(key), int) and not isinstance(counts.get(key), bool)
              else None for key in ("total", "completed", "failed")}
    if any(n is not None and not 0 <= n <= MAX_REQUESTS for n in number.values()):
        raise bad("the batch's request counts are not counts of requests", endpoint)
    total, completed, failed = number["total"], number["completed"], number["failed"]
    if total and (completed or 0) + (failed or 0) > total:  # a total of 0: not counted yet, by some providers
        raise bad(f"the batch says more requests finished ({(completed or 0) + (failed or 0)}) than it has "
                  f"({total})", endpoint)
    return number


def _reasons(errors: object, endpoint: "Endpoint") -> list[str]:
    if errors is None:
        return []
    data = errors.get("data") if isinstance(errors, dict) else None
    if data is None and isinstance(errors, dict):
        return []
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise bad("the batch's errors are not a list of errors", endpoint)
    reasons = []
    for error in data:
        line = error.get("line")
        text = error.get("message") or error.get("code") or ""
        prefix = f"line {line}:" if isinstance(line, int) else ""
        reasons.append(" ".join(filter(None, [prefix, str(text)])))
    return reasons
