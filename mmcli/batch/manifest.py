"""An export manifest checked before `mmcli batch collect` finishes anything from it: a file that was
edited, cut short or written by something else is one clear error, not a crash halfway."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from ..errors import UsageError
from .work import COMMANDS

TOTALS = ("items", "visual_tokens", "bytes", "request_bytes")
DETECT = ("source", "space", "sent_size", "original_size")


def check_manifest(manifest: object, where: str, export: Optional[Path] = None) -> dict:
    """The manifest, or a UsageError naming the first thing in it that is not as --export writes it; with the
    `export` it belongs to, its batches must be those of that export's files."""
    problem = _problem(manifest)
    if not problem and export is not None:
        problem = _names_problem(manifest, export)  # type: ignore[arg-type]
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
    files = manifest.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
        return "'files' is not a list of files with their paths"
    for key in ("parent", "submit_id"):
        if key in manifest and not isinstance(manifest[key], str):
            return f"'{key}' is not a string"
    problem = _batches_problem(manifest.get("provider_batches", {}))
    if problem:
        return problem
    for jid, job in manifest["jobs"].items():
        problem = _job_problem(job)
        if problem:
            return f"job {jid}: {problem}"
    return ""


def _batches_problem(batches: object) -> str:
    """What is wrong with the record `mmcli batch submit` keeps (part name -> upload and batch ids)."""
    if not isinstance(batches, dict):
        return "'provider_batches' is not an object"
    for name, entry in batches.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
            return f"provider batch {name}: not an object with its base_url"
        if any(entry.get(key) is not None and not isinstance(entry[key], str)
               for key in ("batch_id", "input_file_id", "status")):
            return f"provider batch {name}: an id or status is not a string"
        if not entry.get("batch_id") and not entry.get("input_file_id"):
            return f"provider batch {name}: neither a batch id nor an upload id"
        earlier = entry.get("earlier", [])  # the batches a resubmit replaced
        if not isinstance(earlier, list) or not all(
                isinstance(e, dict) and isinstance(e.get("batch_id"), str)
                and all(e.get(k) is None or isinstance(e[k], str) for k in ("output_file_id", "status", "upload"))
                for e in earlier):
            return f"provider batch {name}: 'earlier' is not a list of batches"
    return ""


def _names_problem(manifest: dict, export: Path) -> str:
    """A batch recorded under a name that is none of the export's files (its outputs are saved by that name)."""
    from .export import parts

    names = {part.name for part in parts(export, manifest)}
    for name in manifest.get("provider_batches", {}):
        if name not in names:
            return f"provider batch {name!r}: not the name of a file of the export"
    return ""


def _job_problem(job: object) -> str:
    if not isinstance(job, dict):
        return "not an object"
    if job.get("command") not in COMMANDS:
        return "'command' is not one of " + ", ".join(COMMANDS)
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
    """What `mmcli batch collect` and `fetch` must never write into: the export (every part), its manifest,
    the batch output files, every source the jobs name, and for a merge file the export it came from."""
    from .export import manifest_path

    parts = [f.get("path") for f in manifest.get("files") or [] if isinstance(f, dict) and f.get("path")]
    sources = {s for job in manifest.get("jobs", {}).values() for s in job.get("sources", []) if isinstance(s, str)}
    parent = manifest.get("parent")
    if not isinstance(parent, str) and export.name.endswith(".merge.jsonl"):
        parent = str(export.with_name(export.name[:-len(".merge.jsonl")] + ".jsonl"))  # a merge file written earlier
    parents = [("the export the merge file belongs to", parent),
               ("the export manifest", manifest_path(Path(parent)))] if isinstance(parent, str) else []
    return [("the export file", export), *[("the export file", p) for p in parts],
            ("the export manifest", manifest_path(export)), *[("a batch output file", p) for p in outputs],
            *[("an input", s) for s in sorted(sources)], *parents]
