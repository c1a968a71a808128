"""An export manifest checked before `mmcli batch collect` finishes anything from it: a file that was
edited, cut short or written by something else is one clear error, not a crash halfway."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import UsageError

TOTALS = ("items", "visual_tokens", "bytes", "request_bytes")
DETECT = ("source", "space", "sent_size", "original_size")


def check_manifest(manifest: object, where: str) -> dict:
    """The manifest, or a UsageError naming the first thing in it that is not as --export writes it."""
    problem = _problem(manifest)
    if problem:
        raise UsageError("the export manifest is damaged", problem, where=where,
                         hint="use the manifest --export wrote for this file, unchanged")
    return manifest  # type: ignore[return-value]


def _problem(manifest: object) -> str:
    if not isinstance(manifest, dict):
        return "it is not a JSON object"
    for key in ("model", "family", "base_url"):
        if not isinstance(manifest.get(key), str):
            return f"'{key}' is not a string"
    if not isinstance(manifest.get("jobs"), dict):
        return "'jobs' is not an object"
    for jid, job in manifest["jobs"].items():
        problem = _job_problem(job)
        if problem:
            return f"job {jid}: {problem}"
    return ""


def _job_problem(job: object) -> str:
    if not isinstance(job, dict):
        return "not an object"
    if job.get("command") not in ("ask", "video", "docqa", "detect"):
        return "'command' is not one of ask, video, docqa, detect"
    if not isinstance(job.get("sources"), list) or not isinstance(job.get("prompt"), str):
        return "'sources' or 'prompt' is missing"
    requests = job.get("requests")
    if not isinstance(requests, dict) or not requests:
        return "'requests' is not an object naming its requests"
    for entry in requests.values():
        if not isinstance(entry, dict) or not isinstance(entry.get("plan"), dict):
            return "a request has no plan"
        totals = entry["plan"].get("totals")
        if not isinstance(totals, dict) or any(key not in totals for key in TOTALS):
            return "a request's plan has no totals"
        meta = entry.get("meta")
        if job["command"] == "detect" and (not isinstance(meta, dict) or any(key not in meta for key in DETECT)):
            return "a detect request lacks its sizes"
        if job["command"] == "docqa" and meta is not None and not isinstance(meta, dict):
            return "a docqa request's pages are not an object"
    if job.get("mode") == "merged" and not isinstance(job.get("batches"), list):
        return "a merge lacks its batches"
    return ""


def collect_inputs(export: Path, outputs: Iterable[Path], manifest: dict) -> list[tuple[str, object]]:
    """What `mmcli batch collect` reads: the export (every part), its manifest, the batch output files."""
    from .export import manifest_path

    parts = [f.get("path") for f in manifest.get("files") or [] if isinstance(f, dict) and f.get("path")]
    return [("the export file", export), *[("the export file", p) for p in parts],
            ("the export manifest", manifest_path(export)), *[("a batch output file", p) for p in outputs]]
