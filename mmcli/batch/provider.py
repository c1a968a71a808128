"""Provider batches: an export (every part) uploaded through the OpenAI Batch API, watched, and fetched back.

`submit` (mmcli.batch.submit) uploads each part and starts its batch at the profile's endpoint, recording
the ids in the export's manifest as it goes, so a crash loses none; `status` shows
each batch's state and counts; `fetch` downloads output and error files beside the export and collects
them into the same results lines as a live run (mmcli.batch.collect), so it can be run again at will.
"""

from __future__ import annotations

import json
import shlex
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from ..errors import EndpointUnavailable, JobsFailed, MmcliError, UsageError
from .export import parts

if TYPE_CHECKING:
    from ..settings import Endpoint
    from ..events import Display

BATCHES = "provider_batches"  # the manifest's key: part file name -> its upload and batch ids
DONE = frozenset({"completed", "failed", "expired", "cancelled"})
BROKEN = frozenset({"failed", "expired", "cancelled"})
CHAT_ENDPOINT = "/v1/chat/completions"


def save(export: Path, manifest: dict) -> None:
    """The manifest written again, atomically, with what this run recorded."""
    from ..files import write_atomic
    from .export import manifest_path

    data = (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    write_atomic(manifest_path(export), data, force=True)  # the manifest is mmcli's own record of the export


def _recorded(export: Path, manifest: dict, endpoint: "Endpoint") -> dict:
    """The batches recorded for this export (those with a batch id), after checking they were sent to this endpoint."""
    batches = {name: entry for name, entry in (manifest.get(BATCHES) or {}).items() if entry.get("batch_id")}
    if not batches:
        raise UsageError("this export was not submitted", where=str(export),
                         hint=f"run: mmcli batch submit {shlex.quote(str(export))}")
    same_endpoint(export, batches, endpoint)
    return batches


def same_endpoint(export: Path, batches: dict, endpoint: "Endpoint") -> None:
    """Refuse to ask `endpoint` about batches (or uploads) recorded as sent to another endpoint."""
    from ..urls import masked_url

    where = masked_url(endpoint.base_url)
    other = {entry["base_url"] for entry in batches.values()} - {where}
    if other:
        raise UsageError("the batches were submitted to another endpoint", f"{', '.join(sorted(other))}, not {where}",
                         where=str(export), hint="pass the same --profile or --base-url as for submit")


@contextmanager
def export_locked(export: Path, out: "Display") -> Iterator[None]:
    """The export held by this run while it reads, asks about and records its batches (flock on FILE.jsonl,
    which no run writes): a second submit waits, then finds the batches the first one started."""
    from ..files import flocked

    held = False
    try:
        with flocked(export, f"waiting for another mmcli run on {export} (submit, status or fetch) to finish",
                     out.status):
            held = True
            yield
    except OSError:
        if held:
            raise
        # no export file (removed after its submit) or none that can be read: nothing can submit it, so
        # status and fetch need no lock, and submit says what is wrong with it
        yield


def states(export: Path, endpoint: "Endpoint", out: "Display") -> tuple[dict, list[dict]]:
    """(manifest, one row per recorded batch: part, batch id, status, counts, output ids, the provider's reasons)."""
    from ..net.sdk import openai_client
    from .collect import read_manifest
    from .provider_replies import retrieve

    with export_locked(export, out):  # read, asked and saved by one run at a time: no submit's record is lost
        manifest = read_manifest(export)
        batches = _recorded(export, manifest, endpoint)
        client = openai_client(endpoint)
        rows = []
        for name, entry in batches.items():
            row = retrieve(client, endpoint, name, entry["batch_id"])
            entry["status"] = row["status"]
            rows.append(row)
        save(export, manifest)
    return manifest, rows


def describe(row: dict) -> str:
    """One status line for a batch: its state, counts, and the provider's reason when it did not complete."""
    counts = (f"{row['completed']}/{row['total']} done, {row['failed']} failed" if row["total"] is not None
              else "no counts yet")
    line = f"{row['file']}: {row['batch_id']} {row['status']} ({counts})"
    if row["status"] in BROKEN:
        line += ": " + ("; ".join(row["reasons"]) or "the provider gave no reason")
    return line


def broken(rows: list[dict]) -> Optional[JobsFailed]:
    """The error (exit 8) for batches that failed, expired or were cancelled, naming the provider's reasons."""
    bad = [row for row in rows if row["status"] in BROKEN]
    if not bad:
        return None
    return JobsFailed(f"{len(bad)} batch(es) did not complete", "; ".join(describe(r) for r in bad),
                      hint="fix what the provider says, then run `mmcli batch submit` again: it resubmits "
                           "only the requests with no answer of those parts; answers that did arrive are kept "
                           "and collected by `mmcli batch fetch`")


def wait(export: Path, endpoint: "Endpoint", out: "Display", every: float) -> list[dict]:
    """Poll until every batch is done, with a progress bar over the requests; the last rows."""
    shown = ""
    manifest, rows = states(export, endpoint, out)
    total = sum(row["total"] or 0 for row in rows) or sum(f.get("lines", 0) for f in manifest.get("files", []))
    with out.steps(total, "batch") as bar:
        while True:
            settled = sum((row["completed"] or 0) + (row["failed"] or 0) for row in rows)
            while bar.done < min(settled, total):
                bar.advance()
            summary = "; ".join(describe(row) for row in rows)
            if not out.stderr.isatty() and summary != shown:
                out.status(summary)  # no bar off a terminal: a line whenever something changed
                shown = summary
            if all(row["status"] in DONE for row in rows):
                return rows
            time.sleep(every)
            manifest, rows = states(export, endpoint, out)


def fetch(export: Path, endpoint: "Endpoint", results: Optional[Path], out: "Display") -> None:
    """Download every finished batch's output and error files beside the export and collect them."""
    from ..net.sdk import openai_client
    from .collect import collect, read_manifest
    from .resubmit import earlier_outputs

    manifest = read_manifest(export)
    check_results(export, manifest, results)  # before anything is asked or downloaded
    manifest, rows = states(export, endpoint, out)
    # the answers of batches a resubmit replaced come first: the new batch holds only the rest
    names = [part.name for part in parts(export, manifest)]
    downloaded = earlier_outputs(openai_client(endpoint), endpoint, export, manifest.get(BATCHES) or {}, names)
    downloaded += _download(export, endpoint, rows, out)
    waiting = [row for row in rows if row["status"] not in DONE]
    for row in waiting:
        out.status(describe(row) + "; fetch again when it is done")
    for row in rows:
        if row["status"] == "completed" and not row["output_file_id"] and not row["error_file_id"]:
            out.status(f"{row['file']}: {row['batch_id']} completed, but the provider gave no output or error file")
    failure: Optional[MmcliError] = None
    if downloaded or not waiting:  # every batch is done: jobs without an answer are named, even with no file
        try:
            collect(export, downloaded, results, out)
        except (JobsFailed, EndpointUnavailable) as exc:
            failure = exc
    problem = broken(rows)
    if problem is not None:
        raise problem
    if waiting:
        again = f"mmcli batch fetch {shlex.quote(str(export))}"
        raise JobsFailed(f"{len(waiting)} batch(es) are still running", "; ".join(describe(r) for r in waiting),
                         where=str(export), hint=f"run `{again}` again later (or status to watch)")
    if failure is not None:
        raise failure


def check_results(export: Path, manifest: dict, results: Optional[Path]) -> None:
    """Refuse a results file that is one of the export's own files, sources or downloads (or has a download's
    name), or cannot be opened."""
    from .guard import check_results_place, refuse_planned, refuse_reading_files
    from .manifest import collect_inputs
    from .merge import merge_paths
    from .guard import refuse_reserved
    from .resubmit import EARLIER, earlier_output, resubmit_path

    if results is None:
        return
    names = [part.name for part in parts(export, manifest)]
    downloads = [_download_path(export, name, kind) for name in names for kind in ("output", "error")]
    for name in names:
        for n in range(1, len((manifest.get(BATCHES) or {}).get(name, {}).get(EARLIER) or []) + 1):
            downloads += [earlier_output(export, name, n), resubmit_path(export, name, n)]
    check_results_place(results)
    refuse_reading_files(results, collect_inputs(export, downloads, manifest))
    refuse_reserved(results, export, names)
    refuse_planned(results, [("the merge file", m) for m in merge_paths(export)])


def _download(export: Path, endpoint: "Endpoint", rows: list[dict], out: "Display") -> list[Path]:
    from ..net.sdk import openai_client
    from .resubmit import download

    client = openai_client(endpoint)
    paths = []
    for row in rows:
        for kind in ("output", "error"):
            file_id = row[f"{kind}_file_id"]
            if not file_id:
                continue
            path = _download_path(export, row["file"], kind)
            download(client, endpoint, file_id, path)
            paths.append(path)
            out.status(f"{row['file']}: {kind} file {file_id} saved as {path}")
    return paths


def _download_path(export: Path, part: str, kind: str) -> Path:
    return export.with_name(f"{part.removesuffix('.jsonl')}.{kind}.jsonl")
