"""`mmcli batch collect`: a batch runner's output joined back to the export by custom_id, in any order,
and finished as a live run finishes: the same results lines (answers, detections in original pixels)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from ..errors import ExitCode, JobsFailed, MmcliError, UsageError
from ..files import LongLine, capped_lines
from ..limits import MAX_REPLY_LINE

if TYPE_CHECKING:
    from ..events import Display, Events


def read_manifest(export: Path) -> dict:
    """The manifest written beside an export."""
    from .export import manifest_path

    from .manifest import check_manifest

    path = manifest_path(export)
    try:
        return check_manifest(json.loads(path.read_text(encoding="utf-8")), str(path), export)
    except FileNotFoundError:
        raise UsageError("no manifest for this export", where=str(path),
                         hint="pass the FILE.jsonl that --export wrote; its FILE.manifest.json must be beside it") from None
    except (OSError, ValueError) as exc:
        raise UsageError("cannot read the export manifest", str(exc), where=str(path),
                         hint="use the manifest --export wrote for this file, unchanged") from None


def read_outputs(paths: list[Path], wanted: Optional[set] = None) -> tuple[dict[str, dict], list[str]]:
    """(custom_id -> {"body": chat completion} or {"error": message}, one message per line that is not an
    answer), from every output file, read a line at a time; only the ids in `wanted` are kept."""
    answers: dict[str, dict] = {}
    bad: list[str] = []
    for path in paths:
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise UsageError("cannot read the batch output", exc.strerror or str(exc), where=str(path),
                             hint="pass the output file the batch runner wrote") from None
        with handle:
            for number, raw in enumerate(capped_lines(handle, MAX_REPLY_LINE), start=1):
                if not isinstance(raw, LongLine) and not raw.strip():
                    continue
                try:
                    custom_id, answer = _output_line(raw, f"{path}, line {number}")
                except UsageError as exc:  # one bad line costs its own answer, not the others'
                    bad.append(exc.message())
                    continue
                if wanted is None or custom_id in wanted:
                    answers[custom_id] = answer
    return answers, bad


_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*("(?:[^"\\]|\\.){1,1000}")')


def _long_line(line: LongLine, where: str) -> tuple[str, dict]:
    """The job of a line too long to read, failed with the reason; its custom_id is looked for at either end."""
    for end in (line.head, line.tail):
        found = _CUSTOM_ID.search(end)
        if found:
            try:
                custom_id = json.loads(found.group(1))
            except ValueError:
                continue
            return custom_id, {"error": f"the answer is too large: its line of the batch output ({where}) is "
                                        f"{line.size:,} bytes, over the {MAX_REPLY_LINE >> 20} MB a line may hold",
                               "exit_code": int(ExitCode.UNAVAILABLE)}
    raise UsageError("a batch output line is too long to read",
                     f"{line.size:,} bytes, over {MAX_REPLY_LINE >> 20} MB, and no custom_id at either end",
                     where=where)


def _output_line(raw: Union[bytes, LongLine], where: str) -> tuple[str, dict]:
    if isinstance(raw, LongLine):
        return _long_line(raw, where)
    try:
        line = json.loads(raw)
    except ValueError as exc:
        raise UsageError("the batch output is not JSON lines", str(exc), where=where) from None
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        raise UsageError("a batch output line has no custom_id", where=where)
    response = line.get("response") or {}
    if not isinstance(response, dict):
        raise UsageError("a batch output line's 'response' is not an object", where=where)
    if line.get("error") or response.get("status_code") != 200:
        body = response.get("body")
        error = line.get("error") or (body.get("error") if isinstance(body, dict) else None) or response
        message = error.get("message") if isinstance(error, dict) else str(error)
        return line["custom_id"], {"error": f"HTTP {response.get('status_code')}: {message}"}
    return line["custom_id"], {"body": response.get("body")}


def collect(export: Path, outputs: list[Path], results: Optional[Path], out: "Events") -> None:
    """Write one results line per exported job whose every request has an answer; documents that still
    need their merge go to a second batch file (mmcli.batch.merge)."""
    from .results import open_sink

    from .export import parts
    from .guard import refuse_planned, refuse_reading_files, refuse_reserved
    from .merge import merge_paths
    from .manifest import collect_inputs

    manifest = read_manifest(export)
    refuse_reading_files(results, collect_inputs(export, outputs, manifest))
    refuse_reserved(results, export, [part.name for part in parts(export, manifest)])
    refuse_planned(results, [("the merge file", m) for m in merge_paths(export)])
    answers, bad = read_outputs(outputs, {cid for job in manifest["jobs"].values() for cid in job["requests"]})
    for message in bad:
        out.status(f"skipped: {message}")
    sink = open_sink(results, out)
    counts = {"done": 0, "failed": 0, "missing": 0, "already": 0, "merge": 0}
    merges: dict = {"lines": [], "jobs": {}}
    missing: list[str] = []
    try:
        for jid, job in manifest["jobs"].items():
            counted = _collect_one(jid, job, answers, manifest, sink, merges)
            counts[counted] += 1
            if counted == "missing":
                missing.append(", ".join(map(str, job["sources"])) or jid)
    finally:
        sink.close()
    out.status(f"{counts['done']} done, {counts['failed']} failed, {counts['already']} already done"
               + (f", {counts['missing']} with no output yet" if counts["missing"] else ""))
    if merges["jobs"]:
        _merge_notice(export, merges, manifest, results, out)
    sink.raise_if_lost()
    _raise_unfinished(export, bad, counts, missing, len(merges["jobs"]))


def _merge_notice(export: Path, merges: dict, manifest: dict, results: Optional[Path], out: "Display") -> None:
    """Write the merge file and say the three ways to run it."""
    from .merge import write_merges

    path = shlex.quote(str(write_merges(export, merges["lines"], merges["jobs"], manifest)))  # commands to paste
    keep = f" -o {shlex.quote(str(results))}" if results else ""
    out.status(f"{len(merges['jobs'])} document(s) need their merge step: `mmcli batch submit {path}` then "
               f"`mmcli batch fetch {path}{keep}`, or run {path} through the batch runner, then "
               f"`mmcli batch collect {path} OUTPUT.jsonl{keep}`")


def _raise_unfinished(export: Path, bad: list[str], counts: dict, missing: list[str], waiting: int) -> None:
    """Exit 5 when output lines could not be read (the good ones are collected), else 8 for jobs not done."""
    from ..errors import BadReply

    unfinished = counts["failed"] + counts["missing"] + waiting
    if bad:
        raise BadReply(f"{len(bad)} line(s) of the batch output are not answers; first: {bad[0]}",
                       hint=f"the other lines were collected ({unfinished} job(s) are not done); "
                            "ask the provider about the lines named")
    if unfinished:
        named = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise JobsFailed(f"{unfinished} job(s) are not done", f"no answer for {named}" if missing else "",
                         where=str(export),
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
    from ..net.replies import completion_piece
    from .results import error_fields

    try:
        return [completion_piece(a["body"]) for a in answers]
    except MmcliError as exc:
        return {"error": error_fields(exc)}


def finish(job: dict, answers: list[dict], manifest: dict) -> dict:
    """A job's results fields from its answers, through the task's own finish, as a live run finishes them."""
    from .merge import MERGED, merged_fields

    failed = [a for a in answers if "error" in a]
    if failed:  # refused by the server (4), unless the answer says otherwise (too large to read: 5)
        return {"error": {"exit_code": failed[0].get("exit_code", 4), "message": failed[0]["error"]}}
    pieces = _pieces(answers)
    if isinstance(pieces, dict):
        return pieces
    if job.get("mode") == MERGED:
        return merged_fields(job, pieces[0], manifest)
    from .recorded import finished_fields

    return finished_fields(job, list(job["requests"].values()), pieces, manifest)
