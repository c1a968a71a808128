"""A part whose batch failed, expired or was cancelled, sent again without losing what it answered.

The replaced batch stays in the manifest (the part's `earlier` list) with its output file, which is
saved beside the export at once; the new batch carries only the part's requests with no answer yet
(a file of those lines beside the export); `fetch` collects the earlier outputs with the new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import OutputError

if TYPE_CHECKING:
    from ..settings import Endpoint

EARLIER = "earlier"  # a part's key: the batches it replaced, oldest first
UPLOAD = "upload"  # a batch's key: the file it was made from, when not the part itself
FIRST_LINES, LINE_LIMIT = 8, 16 << 20  # how much of a file is read to tell whether a download saved it


def earlier_output(export: Path, part: str, n: int) -> Path:
    """Where the n-th replaced batch of a part has its output file: FILE.earlier-N.output.jsonl."""
    return export.with_name(f"{part.removesuffix('.jsonl')}.earlier-{n}.output.jsonl")


def resubmit_path(export: Path, part: str, n: int) -> Path:
    """The n-th resubmission of a part: its lines with no answer yet, FILE.resubmit-N.jsonl."""
    return export.with_name(f"{part.removesuffix('.jsonl')}.resubmit-{n}.jsonl")


def retire(client, endpoint: "Endpoint", export: Path, part: str, entry: dict) -> list[dict]:
    """The part's earlier batches with this broken one added last, its output file saved beside the export."""
    from .provider_replies import retrieve

    earlier = list(entry.get(EARLIER) or [])
    if earlier and earlier[-1].get("batch_id") == entry["batch_id"]:
        return earlier  # kept already by a submit whose new batch was refused
    row = retrieve(client, endpoint, part, entry["batch_id"])
    kept = {k: entry[k] for k in ("batch_id", "input_file_id", "submitted", UPLOAD) if entry.get(k)}
    kept.update(status=row["status"], output_file_id=row["output_file_id"])
    earlier.append(kept)
    if row["output_file_id"]:
        download(client, endpoint, row["output_file_id"], earlier_output(export, part, len(earlier)))
    return earlier


def download(client, endpoint: "Endpoint", file_id: str, path: Path) -> None:
    """Save one of the provider's files at `path`, streamed (an output of gigabytes is never held whole); a file
    there is replaced only when it is one a download saved."""
    from ..files import write_atomic
    from ..net.sdk import sdk_errors

    if not _downloaded(path):
        raise OutputError("refusing to replace a file that is not a batch output", f"file {file_id} is saved there",
                          where=str(path), hint="move that file away (the name is the export's), then run again")
    with sdk_errors(endpoint, f"file {file_id}"), client.files.with_streaming_response.content(file_id) as response:
        write_atomic(path, response.iter_bytes(1 << 20), force=True)  # the same bytes on every fetch


def earlier_outputs(client, endpoint: "Endpoint", export: Path, batches: dict, names: list[str]) -> list[Path]:
    """The output files of every replaced batch of the parts `names`, oldest first (downloaded again if one
    was removed); `batches` is the manifest's record of them."""
    paths = []
    for name in names:  # the export's own part names, never a name the manifest made up
        for n, batch in enumerate((batches.get(name) or {}).get(EARLIER) or [], start=1):
            path = earlier_output(export, name, n)
            if batch.get("output_file_id") and not path.is_file():
                download(client, endpoint, batch["output_file_id"], path)
            if path.is_file():
                paths.append(path)
    return paths


def unanswered(export: Path, part: Path, earlier: list[dict]) -> tuple[Optional[Path], int, int]:
    """(the file to upload, its lines, the part's lines): the part itself when nothing was answered, else a
    file of its lines with no answer in the earlier outputs (None when every line has one)."""
    from ..files import write_atomic
    from .collect import read_outputs

    outputs = [p for n in range(1, len(earlier) + 1) if (p := earlier_output(export, part.name, n)).is_file()]
    answers, _ = read_outputs(outputs)
    answered = {cid for cid, answer in answers.items() if "body" in answer}  # a failed request goes again
    with open(part, "rb") as handle:
        ids = [_custom_id(raw) for raw in handle if raw.strip()]
    left = sum(cid not in answered for cid in ids)
    if not answered or not left:
        return (part if left else None), left, len(ids)

    def kept():  # streamed: a part of a hundred megabytes is never held whole
        with open(part, "rb") as handle:
            for raw in handle:
                if raw.strip() and _custom_id(raw) not in answered:
                    yield raw if raw.endswith(b"\n") else raw + b"\n"

    path = resubmit_path(export, part.name, len(earlier))
    write_atomic(path, kept(), force=True)
    return path, left, len(ids)


def _downloaded(path: Path) -> bool:
    """Whether `path` is absent, empty, or a Batch API output or error file (a line among its first has a
    custom_id): never a results file, nor anything else a user keeps there."""
    import json

    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return True
    except OSError:
        return False  # a folder, a file that cannot be read: not a download to replace
    seen = False
    with handle:
        for _ in range(FIRST_LINES):
            raw = handle.readline(LINE_LIMIT)
            if not raw:
                break
            seen = seen or bool(raw.strip())
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a provider's bad line (or a line longer than the limit): the next may tell
            if isinstance(line, dict) and "custom_id" in line:
                return True
    return not seen


def _custom_id(raw: bytes) -> object:
    """A request line's custom_id (None for a line that is not JSON: it goes again, for the provider to judge)."""
    import json

    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line.get("custom_id") if isinstance(line, dict) else None
