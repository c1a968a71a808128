"""`mmcli batch collect`: a batch runner's output joined back to the export by custom_id, in any order,
and finished as a live run finishes: the same results lines (answers, detections in original pixels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import JobsFailed, MmcliError, UsageError

if TYPE_CHECKING:
    from ..render import Output


def read_manifest(export: Path) -> dict:
    """The manifest written beside an export."""
    from .export import manifest_path

    path = manifest_path(export)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("no manifest for this export", where=str(path),
                         hint="pass the FILE.jsonl that --export wrote; its FILE.manifest.json must be beside it") from None
    except (OSError, ValueError) as exc:
        raise UsageError("cannot read the export manifest", str(exc), where=str(path)) from None


def read_outputs(paths: list[Path]) -> dict[str, dict]:
    """custom_id -> {"body": chat completion} or {"error": message}, from every output file."""
    answers: dict[str, dict] = {}
    for path in paths:
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise UsageError("cannot read the batch output", exc.strerror or str(exc), where=str(path)) from None
        with handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    custom_id, answer = _output_line(raw, f"{path}, line {number}")
                    answers[custom_id] = answer
    return answers


def _output_line(raw: bytes, where: str) -> tuple[str, dict]:
    try:
        line = json.loads(raw)
    except ValueError as exc:
        raise UsageError("the batch output is not JSON lines", str(exc), where=where) from None
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        raise UsageError("a batch output line has no custom_id", where=where)
    response = line.get("response") or {}
    if line.get("error") or response.get("status_code") != 200:
        error = line.get("error") or (response.get("body") or {}).get("error") or response
        message = error.get("message") if isinstance(error, dict) else str(error)
        return line["custom_id"], {"error": f"HTTP {response.get('status_code')}: {message}"}
    return line["custom_id"], {"body": response.get("body")}


def collect(export: Path, outputs: list[Path], results: Optional[Path], out: "Output") -> None:
    """Write one results line per exported job whose every request has an answer; documents that still
    need their merge go to a second batch file (mmcli.batch.merge)."""
    from .merge import write_merges
    from .results import open_sink

    manifest = read_manifest(export)
    answers = read_outputs(outputs)
    sink = open_sink(results, out)
    counts = {"done": 0, "failed": 0, "missing": 0, "already": 0, "merge": 0}
    merges: dict = {"lines": [], "jobs": {}}
    try:
        for jid, job in manifest["jobs"].items():
            counts[_collect_one(jid, job, answers, manifest, sink, merges)] += 1
    finally:
        sink.close()
    out.status(f"{counts['done']} done, {counts['failed']} failed, {counts['already']} already done"
               + (f", {counts['missing']} with no output yet" if counts["missing"] else ""))
    waiting = len(merges["jobs"])
    if waiting:
        path = write_merges(export, merges["lines"], merges["jobs"], manifest)
        out.status(f"{waiting} document(s) need their merge step: run {path} through the batch runner, then "
                   f"mmcli batch collect {path} OUTPUT.jsonl" + (f" -o {results}" if results else ""))
    if counts["failed"] or counts["missing"] or waiting:
        raise JobsFailed(f"{counts['failed'] + counts['missing'] + waiting} job(s) are not done", where=str(export),
                         hint="failed lines say why; jobs with no output yet are collected when run again "
                              "with the rest of the output; merges are collected from the merge file's output")


def _collect_one(jid: str, job: dict, answers: dict, manifest: dict, sink, merges: dict) -> str:
    """Finish one job (or queue its merge); which count it adds to."""
    from .merge import merge_request

    before = sink.previous.get(jid)
    if before is not None and not before.get("error"):
        return "already"
    if any(cid not in answers for cid in job["requests"]):
        return "missing"
    got = [answers[cid] for cid in job["requests"]]
    record = {"id": jid, "command": job["command"], "sources": job["sources"], "prompt": job["prompt"]}
    if job["command"] == "docqa" and job.get("mode") == "batches" and not any("error" in a for a in got):
        pieces = _pieces(got)
        if not isinstance(pieces, dict):
            line, entry = merge_request(jid, job, pieces, manifest)
            merges["lines"].append(line)
            merges["jobs"][jid] = entry
            return "merge"
        record.update(pieces)
    else:
        record.update(finish(job, got, manifest))
    sink.write(record)
    return "failed" if "error" in record else "done"


def _pieces(answers: list[dict]):
    """The completions of `answers`, or the error fields of the first bad one."""
    from ..replies import completion_piece
    from .results import error_fields

    try:
        return [completion_piece(a["body"]) for a in answers]
    except MmcliError as exc:
        return {"error": error_fields(exc)}


def finish(job: dict, answers: list[dict], manifest: dict) -> dict:
    """A job's results fields from its answers, through the same finishing as a live run."""
    from .merge import MERGED, merged_fields

    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        return {"error": {"exit_code": 4, "message": errors[0]}}
    pieces = _pieces(answers)
    if isinstance(pieces, dict):
        return pieces
    if job.get("mode") == MERGED:
        return merged_fields(job, pieces[0])
    entries = list(job["requests"].values())
    if job["command"] == "detect":
        fields = _detections(pieces, entries, manifest)
    else:
        fields = _answer(pieces, entries, job, manifest)
    # As live: ask and detect warn about each answer (docqa's answer is judged as a whole).
    warnings = [] if job["command"] == "docqa" else _warnings(pieces, entries, named=job["command"] == "detect")
    if warnings:
        fields["warnings"] = warnings
    return fields


def _warnings(pieces: list, entries: list[dict], named: bool) -> list[str]:
    """The warnings a live run gives: an answer cut at the token limit, fewer prompt tokens than planned."""
    found = []
    for piece, entry in zip(pieces, entries):
        name = f"{entry['label']}: " if named else ""
        if piece.finish_reason == "length":
            found.append(f"{name}the answer stopped at the token limit; raise --max-tokens for a longer answer")
        if _verified(piece, entry) is False:
            found.append(f"{name}the server counted {piece.usage.get('prompt_tokens')} prompt tokens, fewer than "
                         f"the {entry['plan']['totals']['visual_tokens']} visual tokens planned")
    return found


def _verified(piece, entry: dict) -> Optional[bool]:
    planned, prompt = entry["plan"]["totals"]["visual_tokens"], piece.usage.get("prompt_tokens")
    return None if not planned or not isinstance(prompt, int) else prompt >= planned


def _answer(pieces: list, entries: list[dict], job: dict, manifest: dict) -> dict:
    from ..tasks.common import total_usage

    if job.get("mode") == "per-page":
        text = "\n\n".join(f"## {e['label']}\n\n{p.text.strip()}" for p, e in zip(pieces, entries))
    else:
        text = pieces[-1].text
    checks = [_verified(p, e) for p, e in zip(pieces, entries)]
    fields = {"answer": text, "model": pieces[-1].model or manifest["model"],
              "finish_reason": pieces[-1].finish_reason, "usage": total_usage([p.usage for p in pieces]),
              "verified": None if None in checks else all(checks)}
    if "pages" in job:
        fields.update(pages=job["pages"], mode=job["mode"])
    if job.get("mode") == "per-page":
        fields["batches"] = [{"pages": e.get("pages"), "answer": p.text, "usage": p.usage} for p, e in zip(pieces, entries)]
    fields["plan"] = entries[-1]["plan"] if len(entries) == 1 else {"totals": _totals(entries)}
    from .results import structured

    return structured(fields, pieces if job.get("mode") == "per-page" else pieces[-1:], job.get("schema"))


def _detections(pieces: list, entries: list[dict], manifest: dict) -> dict:
    from ..grounding.parse import parse_answer
    from ..grounding.report import InputResult
    from ..grounding.result import ground
    from ..tasks.common import total_usage

    found = []
    for piece, entry in zip(pieces, entries):
        parsed = parse_answer(piece.text)
        sent, size = tuple(entry["sent_size"]), tuple(entry["original_size"])
        grounded = ground(parsed, entry["space"], sent, size)
        points = entry.get("page_size_pt")
        result = InputResult(entry["source"], entry.get("page"), size, sent, grounded, parsed, piece.text,
                             piece.finish_reason, piece.usage, page_size_pt=tuple(points) if points else None)
        data = result.to_dict()
        data.pop("usage", None)
        found.append(data)
    checks = [_verified(p, e) for p, e in zip(pieces, entries)]
    return {"detections": found, "model": pieces[-1].model or manifest["model"],
            "usage": total_usage([p.usage for p in pieces]), "verified": None if None in checks else all(checks),
            "plan": {"totals": _totals(entries)}}


def _totals(entries: list[dict]) -> dict:
    totals = [e["plan"]["totals"] for e in entries]
    tokens = [t["visual_tokens"] for t in totals]
    return {"items": sum(t["items"] for t in totals), "visual_tokens": None if None in tokens else sum(tokens),
            "bytes": sum(t["bytes"] for t in totals), "request_bytes": sum(t["request_bytes"] for t in totals)}
