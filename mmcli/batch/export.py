"""--export openai-batch: the requests of a run written as OpenAI Batch API input instead of being sent.

Each line is {"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}, the media resized
and inlined as data URLs, no `stream`. Files are split at 50,000 lines and at --batch-max-mb. The
manifest (FILE.manifest.json) keeps, per job, what `mmcli batch collect` needs to finish it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import JobsFailed, MmcliError, OutputError, OutputNotWritten, UsageError
from .work import BatchFlags, Work, job_id

if TYPE_CHECKING:
    from ..settings import CommonOptions
    from ..core.job import Job
    from ..events import Events
    from ..tasks.common import Context

MAX_LINES = 50_000  # OpenAI's and Parasail's limit per batch file
CHAT_URL = "/v1/chat/completions"


def manifest_path(path: Path) -> Path:
    """FILE.manifest.json beside FILE.jsonl."""
    return path.with_name(path.name.removesuffix(".jsonl") + ".manifest.json")


def part_path(path: Path, n: int) -> Path:
    """The n-th file of a split export: FILE.jsonl, FILE-2.jsonl, ..."""
    if n == 1:
        return path
    return path.with_name(f"{path.name.removesuffix('.jsonl')}-{n}.jsonl")


def parts(path: Path, manifest: dict) -> list[Path]:
    """The files of an export, in order (named as --export names them, wherever the export was run from)."""
    return [part_path(path, n) for n in range(1, len(manifest.get("files") or []) + 1)]


class Parts:
    """Batch files written line by line, a new file whenever the next line would pass a limit."""

    def __init__(self, path: Path, max_bytes: int, max_lines: int = MAX_LINES) -> None:
        self.path, self.max_bytes, self.max_lines = path, max_bytes, max_lines
        self.lock = threading.Lock()
        self.files: list[dict] = []  # {"path", "lines", "bytes"}
        self.handle = None
        self.removed = False  # set once the export is given up: no file is written after that

    def check_size(self, line: bytes) -> None:
        """Refuse one request that no file could hold."""
        if len(line) > self.max_bytes:
            raise UsageError("a request is larger than --batch-max-mb", f"{len(line) / 1e6:.1f} MB",
                             hint="raise --batch-max-mb, or lower --max-pixels")

    def write(self, line: bytes) -> str:
        """Append one line; the name of the file it went to. A failed write ends the export (exit 9)."""
        self.check_size(line)
        with self.lock:
            if self.removed:
                raise OutputNotWritten("the export was stopped", where=str(self.path))  # a worker left behind
            last = self.files[-1] if self.files else None
            if last is None or last["lines"] >= self.max_lines or last["bytes"] + len(line) > self.max_bytes:
                last = self._next()
            try:
                self.handle.write(line)
                self.handle.flush()  # a full disk shows now, not when the file is closed
            except OSError as exc:
                raise OutputNotWritten("cannot write the export file", exc.strerror or str(exc), where=last["path"],
                                       hint="make room, then export again (the unfinished files were removed)") from None
            last["lines"] += 1
            last["bytes"] += len(line)
            return last["path"]

    def _next(self) -> dict:
        self._close_handle()
        path = part_path(self.path, len(self.files) + 1)
        try:
            self.handle = open(path, "xb")
        except FileExistsError:
            raise OutputError("export file exists", where=str(path), hint="remove it, or export to another name") from None
        except OSError as exc:
            raise OutputNotWritten("cannot write the export file", exc.strerror or str(exc), where=str(path)) from None
        entry = {"path": str(path), "lines": 0, "bytes": 0}
        self.files.append(entry)
        return entry

    def _close_handle(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError as exc:  # the last buffered bytes did not fit
                raise OutputNotWritten("cannot write the export file", exc.strerror or str(exc),
                                       where=str(self.files[-1]["path"])) from None

    def close(self) -> None:
        """Close the last file."""
        with self.lock:
            self._close_handle()

    def remove(self) -> None:
        """Remove every file written: a half export is of no use to a batch API."""
        with self.lock:
            self.removed = True
            if self.handle is not None:
                try:
                    self.handle.close()
                except OSError:
                    pass  # removed next anyway
                self.handle = None
            for entry in self.files:
                try:
                    os.unlink(entry["path"])
                except FileNotFoundError:
                    pass


def check_export_target(path: Path) -> None:
    """Refuse, before any work, an export that would meet files already there or has no folder to go in."""
    import glob
    import re

    from .guard import refuse_device

    refuse_device(path, "--export")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("the export folder does not exist", where=str(folder),
                          hint="create it first, or export into an existing folder")
    stem = path.name.removesuffix(".jsonl")
    split = re.compile(re.escape(stem) + r"-[0-9]+\.jsonl")
    taken = [path, manifest_path(path)] + sorted(p for p in folder.glob(f"{glob.escape(stem)}-*.jsonl")
                                                 if split.fullmatch(p.name))
    for existing in taken:
        if os.path.lexists(existing):
            raise OutputError("export file exists", where=str(existing),
                              hint="remove it (and the files of that export), or export to another name")


def request_line(custom_id: str, request: dict) -> bytes:
    """One Batch API input line: the chat request without `stream`."""
    body = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
    line = {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body}
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def prepared_jobs(work: Work, ctx: "Context") -> tuple[list["Job"], dict]:
    """The jobs of `work`, built but not sent, and what the finish needs to know about the run as a whole."""
    from .answer import prepared

    planned = prepared(work, ctx)
    # The generation options: for the warnings of the finish, and docqa's merge built by collect (batch.merge).
    extra: dict = {"generation": dataclasses.asdict(work.generation)}
    if planned.doc is not None:
        extra.update(mode=planned.doc.mode, pages=planned.doc.numbers)
    if work.command == "detect":
        extra["target"] = work.prompt
    return planned.jobs, extra


def finisher_entry(job: "Job", plan) -> dict:
    """Per request: what collect needs to finish its answer (the job's meta, its label, the plan's summary)."""
    entry = {"plan": plan.summary(), "label": job.label}
    if job.meta is not None:
        entry["meta"] = job.meta.to_dict()
    return entry


def run_export(works: list[Work], opts: "CommonOptions", flags: BatchFlags, out: "Events", title: str) -> None:
    """Prepare every job and write its requests to the batch file(s) and the manifest; nothing is sent."""
    from ..settings import resolve_settings
    from ..core.endpoint import connect, without_media_uuids
    from ..urls import masked_url
    from ..files import write_atomic
    from .engine import Engine
    from .progress import Progress, Tally

    settings = resolve_settings(opts.endpoint)
    target = without_media_uuids(connect(settings, out, dry_run=True))  # asks the endpoint nothing
    if not target.model:
        raise UsageError("--export needs the model's name", hint="pass --model NAME (the name the batch runner "
                         "serves, e.g. vLLM's --served-model-name) and --family")
    if target.family_source == "default":
        # Nothing is asked of an endpoint on export, so only --family (or the id) can say the grid.
        out.warn(f"exporting for family {target.family.name}: the model name {target.model!r} names no family "
                 "and no endpoint is asked; pass --family (e.g. --family qwen2.5-vl) to size images for its grid")
    manifest_file = manifest_path(flags.export_path)
    check_export_target(flags.export_path)
    parts = Parts(flags.export_path, int(flags.batch_max_mb * 1_000_000))
    manifest = {"format": "openai-batch", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": target.model,
                "family": target.family.name, "base_url": masked_url(target.base_url),
                "quirks": dataclasses.asdict(target.settings.endpoint.quirks), "files": parts.files,
                "jobs": {}, "failed": []}
    progress = Progress(out, Tally(len(works)), title)
    exporter = _Exporter(target, parts, manifest, progress)
    concurrency = flags.concurrency or settings.endpoint.profile.default_concurrency(settings.endpoint.base_url)
    progress.start()
    try:
        try:
            interrupted = Engine(works, exporter.handle, concurrency).run(lambda n: None, lambda: None)
        finally:
            progress.close()
        if interrupted:
            raise KeyboardInterrupt
        parts.close()
        write_atomic(manifest_file, (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    except BaseException:
        parts.remove()  # a half export (or one without its manifest) is of no use to a batch API
        raise
    requests = sum(f["lines"] for f in parts.files)
    out.status(f"exported {len(manifest['jobs'])} job(s) as {requests} request(s) in {len(parts.files)} file(s): "
               + ", ".join(f["path"] for f in parts.files) + f"; manifest {manifest_file}")
    named = shlex.quote(str(flags.export_path))  # a command to paste: a name with spaces stays one argument
    out.status(f"next: `mmcli batch submit {named} --profile NAME` on a provider's Batch API, or "
               f"vLLM's batch runner (docs/many-files.md) then `mmcli batch collect {named} "
               "OUTPUT.jsonl -o results.jsonl`")
    if manifest["failed"]:
        raise JobsFailed(f"{len(manifest['failed'])} of {len(works)} job(s) could not be exported",
                         where=str(manifest_file), hint="the manifest's 'failed' list says why")


class _Exporter:
    """Shared by the export workers: the target, the files, the manifest."""

    def __init__(self, target, parts: Parts, manifest: dict, progress) -> None:
        self.target, self.parts, self.manifest, self.progress = target, parts, manifest, progress
        self.lock = threading.Lock()

    def handle(self, work: Work) -> None:
        """Prepare one job and write its requests."""
        from ..events import Events
        from ..core.runner import Runner
        from ..tasks.common import Context
        from .results import error_fields

        started = time.monotonic()
        jid = job_id(work, self.target.family.name, self.target.model)
        events = Events()
        runner = Runner(self.target)
        entry = {"command": work.command, "sources": work.sources, "prompt": work.prompt, "requests": {}}
        if work.line is not None:
            entry["line"] = work.line
        lines = []
        try:
            jobs, extra = prepared_jobs(work, Context(self.target, work.media, work.generation, events))
            for n, job in enumerate(jobs, start=1):
                custom_id = jid if len(jobs) == 1 else f"{jid}#{n}"
                plan = runner.plan(job, stream=False)
                line = request_line(custom_id, plan.request)
                self.parts.check_size(line)
                lines.append((custom_id, line, finisher_entry(job, plan)))
        except MmcliError as exc:
            failed = {"id": jid, "sources": work.sources, "error": error_fields(exc)}
            with self.lock:
                self.manifest["failed"].append(failed)
            self.progress.record(work.label, failed)
            return
        for custom_id, line, finishing in lines:
            self.parts.write(line)  # a write that fails ends the whole export
            entry["requests"][custom_id] = finishing
        entry.update(extra)
        if events.warnings:
            entry["warnings"] = list(events.warnings)
        with self.lock:
            self.manifest["jobs"][jid] = entry
        self.progress.record(work.label, {"seconds": time.monotonic() - started})
