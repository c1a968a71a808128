"""`mmcli batch submit`: each part of an export uploaded and its batch started at most once.

A create that timed out or was interrupted may still have started the batch on the provider's side, so
nothing is sent twice by guessing: batches are created without the SDK's retries, the upload's id is
recorded before the create is sent, and every batch carries the export's own submit id in its
metadata. A part whose create never came back is first looked for among the provider's batches
(batches.list) and only created when it is not there.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from ..errors import RequestRejected, UsageError
from .export import parts
from .provider import BATCHES, BROKEN, CHAT_ENDPOINT, export_locked, same_endpoint, save
from .provider_replies import retrieve
from .resubmit import EARLIER, UPLOAD, retire, unanswered

if TYPE_CHECKING:
    from ..settings import Endpoint
    from ..events import Display

SUBMIT_ID = "submit_id"  # the manifest's key: this export's id, in the metadata of each of its batches
CREATING = "creating"  # a part whose upload is recorded and whose create was sent but not answered
# The Batch API's states (a batch object's `status`); any other recorded word is asked about again.
KNOWN = frozenset({"validating", "in_progress", "finalizing", "completed", "cancelling", *BROKEN})
LIST_LIMIT = 1000  # how many of the provider's newest batches are looked through for an unanswered create
NO_BATCH_API = ("this endpoint has no Batch API (/files, /batches; vLLM has none): run the export with vLLM's "
                "batch runner (vllm run-batch) and read its output back with `mmcli batch collect` "
                "(docs/many-files.md), or submit to a provider that has one (--profile openai, parasail)")


def submit(export: Path, endpoint: "Endpoint", out: "Display") -> int:
    """Upload every part not yet submitted (or whose batch failed, expired or was cancelled) and start its batch."""
    with export_locked(export, out):  # a second submit meanwhile would start every part again, billed twice
        return _submit(export, endpoint, out)


def _submit(export: Path, endpoint: "Endpoint", out: "Display") -> int:
    from ..net.sdk import openai_client
    from .collect import read_manifest

    manifest = read_manifest(export)
    files = parts(export, manifest)
    missing = [str(p) for p in files if not p.is_file()]
    if not files or missing:
        raise UsageError("the export's files are missing", ", ".join(missing) or "the manifest lists none",
                         where=str(export), hint="export again with --export openai-batch FILE.jsonl")
    same_endpoint(export, manifest.setdefault(BATCHES, {}), endpoint)  # its batches are asked about, retired
    if not isinstance(manifest.get(SUBMIT_ID), str):
        manifest[SUBMIT_ID] = uuid.uuid4().hex
        save(export, manifest)
    client = openai_client(endpoint, max_retries=0)  # a retried create is a second batch, billed twice
    return sum(_submit_part(client, endpoint, export, manifest, path, out) for path in files)


def _submit_part(client, endpoint: "Endpoint", export: Path, manifest: dict, path: Path, out: "Display") -> bool:
    """Start one part's batch unless it has one that runs or completed; whether a batch was created."""
    entry = manifest[BATCHES].get(path.name)
    if entry is not None and entry.get("batch_id") and entry.get("status") not in KNOWN:
        # a state this run cannot judge (none recorded, or another word): the provider says what it is
        entry["status"] = retrieve(client, endpoint, path.name, entry["batch_id"])["status"]
        save(export, manifest)
    if entry is not None and entry.get("batch_id") and entry.get("status") not in BROKEN:
        out.status(f"{path.name}: already submitted as {entry['batch_id']}")
        return False
    started = False
    batch = _started_before(client, endpoint, manifest, path.name, entry)
    if batch is None:
        earlier = _earlier(client, endpoint, export, manifest, path, entry)
        upload, count, total = unanswered(export, path, earlier)
        if upload is None:
            out.status(f"{path.name}: every request has its answer in an earlier batch; fetch collects them")
            return False
        batch = _start(client, endpoint, export, manifest, path, upload, earlier)
        started = True
        sent = f"{count} request(s)" if count == total else \
            f"{count} of {total} request(s), those with no answer yet"
        out.status(f"{path.name}: submitted as {batch['id']} ({sent})")
    else:
        out.status(f"{path.name}: found its batch {batch['id']} (started by an interrupted submit)")
    manifest[BATCHES][path.name].update(batch_id=batch["id"], status=batch["status"])
    save(export, manifest)
    return started


def _earlier(client, endpoint: "Endpoint", export: Path, manifest: dict, path: Path,
             entry: Optional[dict]) -> list[dict]:
    """The batches this part had before: a broken one is kept there (its answers saved) before it is replaced."""
    if entry is None:
        return []
    if entry.get("batch_id") and entry.get("status") in BROKEN:
        earlier = retire(client, endpoint, export, path.name, entry)
        manifest[BATCHES][path.name] = {**entry, EARLIER: earlier}
        save(export, manifest)  # the old batch stays recorded, whatever happens to the new one
        return earlier
    return list(entry.get(EARLIER) or [])


def _start(client, endpoint: "Endpoint", export: Path, manifest: dict, path: Path, upload_path: Path,
           earlier: list[dict]) -> dict:
    """Upload one part, or its unanswered lines (its id recorded at once), then create its batch; the batch's
    id and status."""
    from ..urls import masked_url
    from .provider_replies import object_id, reply_object

    previous = manifest[BATCHES].get(path.name)
    with _errors(endpoint, path), open(upload_path, "rb") as handle:
        raw = client.files.with_raw_response.create(file=(upload_path.name, handle, "application/jsonl"),
                                                     purpose="batch")
    upload = object_id(reply_object(raw, "the upload", endpoint), "upload", endpoint)
    entry = {"input_file_id": upload, "batch_id": None, "base_url": masked_url(endpoint.base_url),
             "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": CREATING}
    if upload_path != path:
        entry[UPLOAD] = upload_path.name
    if earlier:
        entry[EARLIER] = earlier
    manifest[BATCHES][path.name] = entry
    save(export, manifest)  # before the create: an interrupted create is found again by this upload's id
    try:
        with _errors(endpoint, path):
            raw = client.batches.with_raw_response.create(
                input_file_id=upload, endpoint=CHAT_ENDPOINT, completion_window="24h",
                metadata={"mmcli_export": path.name, "mmcli_submit": manifest[SUBMIT_ID]})
    except RequestRejected as exc:
        if exc.status_code not in (408, 409, 429):  # a plain refusal: no batch was made, nothing to look for
            if previous is None:
                del manifest[BATCHES][path.name]
            else:
                manifest[BATCHES][path.name] = previous  # the batches it had stay recorded
            save(export, manifest)
        raise
    return _batch(reply_object(raw, "the batch's creation", endpoint), endpoint)


def _batch(data: dict, endpoint: "Endpoint") -> dict:
    from .provider_replies import batch_row

    row = batch_row("", data, endpoint)
    return {"id": row["batch_id"], "status": row["status"]}


def _started_before(client, endpoint: "Endpoint", manifest: dict, name: str, entry: Optional[dict]) -> Optional[dict]:
    """The batch an earlier, interrupted submit created for this part's upload, if the provider has one."""
    if entry is None or entry.get("status") != CREATING or not entry.get("input_file_id"):
        return None
    after = None
    for _ in range(LIST_LIMIT // 100):
        page = _list_page(client, endpoint, manifest, name, after)
        data = page.get("data")
        if not isinstance(data, list):
            from .provider_replies import bad

            raise bad("the list of batches has no 'data' list", endpoint)
        for item in data:
            if isinstance(item, dict) and _ours(item, manifest, name, entry["input_file_id"]):
                return _batch(item, endpoint)
        last = data[-1].get("id") if data and isinstance(data[-1], dict) else None
        if not page.get("has_more") or not isinstance(last, str):
            return None
        after = last
    return None


def _list_page(client, endpoint: "Endpoint", manifest: dict, name: str, after: Optional[str]) -> dict:
    """One page of the provider's batches, newest first; a server that cannot list them cannot be asked."""
    from .provider_replies import reply_object

    try:
        with _errors(endpoint, Path(name)):
            raw = client.batches.with_raw_response.list(limit=100, **({"after": after} if after else {}))
    except RequestRejected as exc:
        if exc.status_code not in (404, 405):
            raise
        raise UsageError("cannot tell whether an interrupted submit started this part", exc.message(), where=name,
                         hint=f"look among the provider's batches for metadata mmcli_submit={manifest[SUBMIT_ID]}; "
                              f"if there is none, delete the entry {name} under provider_batches in the "
                              "manifest and submit again") from None
    return reply_object(raw, "the list of batches", endpoint)


def _ours(item: dict, manifest: dict, name: str, upload: str) -> bool:
    """A batch over this part's own upload (an upload id is never reused); metadata, when echoed, must agree."""
    metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
    return (item.get("input_file_id") == upload and metadata.get("mmcli_submit", manifest[SUBMIT_ID]) == manifest[SUBMIT_ID]
            and metadata.get("mmcli_export", name) == name)


@contextmanager
def _errors(endpoint: "Endpoint", path: Path) -> Iterator[None]:
    """The SDK's errors as mmcli's; a 404 or 405 while submitting means the endpoint has no Batch API at all."""
    from ..net.sdk import sdk_errors

    try:
        with sdk_errors(endpoint, f"the Batch API (part {path.name})"):
            yield
    except RequestRejected as exc:
        if exc.status_code in (404, 405):
            exc.hint = NO_BATCH_API
        raise
