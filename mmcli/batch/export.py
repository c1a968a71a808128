"""--export openai-batch: the requests of a run written as OpenAI Batch API input instead of being sent.

Each line is {"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}, the media resized
and inlined as data URLs, no `stream`. Files are split at 50,000 lines and at --batch-max-mb. The
manifest (FILE.manifest.json) keeps, per job, what `mmcli batch collect` needs to finish it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import JobsFailed, MmcliError, UsageError
from .work import BatchFlags, Work, job_id

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..job import Job
    from ..render import Output
    from ..tasks.common import Context

MAX_LINES = 50_000  # OpenAI's and Parasail's limit per batch file
CHAT_URL = "/v1/chat/completions"


def manifest_path(path: Path) -> Path:
    """FILE.manifest.json beside FILE.jsonl."""
    return path.with_name(path.name[:-len(".jsonl")] + ".manifest.json" if path.name.endswith(".jsonl")
                          else path.name + ".manifest.json")


def part_path(path: Path, n: int) -> Path:
    """The n-th file of a split export: FILE.jsonl, FILE-2.jsonl, ..."""
    if n == 1:
        return path
    stem = path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(f"{stem}-{n}.jsonl")


class Parts:
    """Batch files written line by line, a new file whenever the next line would pass a limit."""

    def __init__(self, path: Path, max_bytes: int, max_lines: int = MAX_LINES) -> None:
        self.path, self.max_bytes, self.max_lines = path, max_bytes, max_lines
        self.lock = threading.Lock()
        self.files: list[dict] = []  # {"path", "lines", "bytes"}
        self.handle = None

    def write(self, line: bytes) -> str:
        """Append one line; the name of the file it went to."""
        if len(line) > self.max_bytes:
            raise UsageError("a request is larger than --batch-max-mb", f"{len(line) / 1e6:.1f} MB",
                             hint="raise --batch-max-mb, or lower --max-pixels")
        with self.lock:
            last = self.files[-1] if self.files else None
            if last is None or last["lines"] >= self.max_lines or last["bytes"] + len(line) > self.max_bytes:
                last = self._next()
            self.handle.write(line)
            last["lines"] += 1
            last["bytes"] += len(line)
            return last["path"]

    def _next(self) -> dict:
        if self.handle is not None:
            self.handle.close()
        path = part_path(self.path, len(self.files) + 1)
        try:
            self.handle = open(path, "xb")
        except FileExistsError:
            raise UsageError("export file exists", where=str(path), hint="remove it, or export to another name") from None
        entry = {"path": str(path), "lines": 0, "bytes": 0}
        self.files.append(entry)
        return entry

    def close(self) -> None:
        """Close the last file."""
        with self.lock:
            if self.handle is not None:
                self.handle.close()
                self.handle = None


def request_line(custom_id: str, request: dict) -> bytes:
    """One Batch API input line: the chat request without `stream`."""
    body = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
    line = {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body}
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def prepared_jobs(work: Work, ctx: "Context") -> tuple[list["Job"], dict]:
    """The jobs of `work`, built but not sent, and what the finisher needs to know about the run."""
    from ..inputs import read_inputs
    from .work import ALLOWED

    checked = read_inputs(list(work.inputs), work.media, ctx.target.settings.endpoint.timeout, ctx.events.warn,
                           ALLOWED[work.command])
    if work.command in ("ask", "video"):
        from ..tasks.ask import ask_job

        return [ask_job(checked, work.prompt, ctx, work.task)], {}
    if work.command == "docqa":
        from ..tasks.docqa import choose_pages, doc_jobs

        jobs = doc_jobs(choose_pages(checked, work.task), work.prompt, work.task, ctx)
        extra = {"mode": jobs.mode, "pages": jobs.numbers}
        if jobs.mode == "batches":  # the merge is built by collect, from these options (mmcli.batch.merge)
            extra["generation"] = dataclasses.asdict(work.generation)
        return jobs.jobs, extra
    from ..tasks.detect import choose, detect_jobs

    return detect_jobs(choose(checked, work.task, work.media.pass_url), work.task, ctx), {}


def finisher_entry(job: "Job", plan) -> dict:
    """Per request: what collect needs to finish its answer (sizes, coordinate space, pages, the plan)."""
    from .answer import plan_summary

    entry = {"plan": plan_summary(plan)}
    context = job.context
    if "space" in context:  # detect
        page, item, original = context["page"], job.items[0], context["original"]
        rendered = page.rendered
        entry.update(source=page.source.label, page=page.page, space=context["space"],
                     sent_size=[item.sent_width, item.sent_height], original_size=[original.width, original.height],
                     page_size_pt=None if rendered is None else [rendered.width_pt, rendered.height_pt])
    if "pages" in context:
        entry["pages"] = context["pages"]
    entry["label"] = job.label
    return entry


def run_export(works: list[Work], opts: "CommonOptions", flags: BatchFlags, out: "Output", title: str) -> None:
    """Prepare every job and write its requests to the batch file(s) and the manifest; nothing is sent."""
    from ..config import resolve_settings
    from ..endpoint import connect
    from ..urls import masked_url
    from ..files import write_atomic
    from .engine import Engine
    from .progress import Progress, Tally

    settings = resolve_settings(opts.endpoint)
    target = connect(settings, out, dry_run=True)  # asks the endpoint nothing
    if not target.model:
        raise UsageError("--export needs the model's name", hint="pass --model NAME (the name the batch runner "
                         "serves, e.g. vLLM's --served-model-name) and --family")
    manifest_file = manifest_path(flags.export_path)
    if manifest_file.exists():
        raise UsageError("export manifest exists", where=str(manifest_file), hint="export to another name")
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
        interrupted = Engine(works, exporter.handle, concurrency).run(lambda n: None, lambda: None)
    finally:
        progress.close()
        parts.close()
    if interrupted:
        for entry in parts.files:
            os.unlink(entry["path"])  # a half export is of no use to a batch API
        raise KeyboardInterrupt
    write_atomic(manifest_file, (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    requests = sum(f["lines"] for f in parts.files)
    out.status(f"exported {len(manifest['jobs'])} job(s) as {requests} request(s) in {len(parts.files)} file(s): "
               + ", ".join(f["path"] for f in parts.files) + f"; manifest {manifest_file}")
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
        from ..runner import Runner
        from ..tasks.common import Context
        from .results import error_fields

        started = time.monotonic()
        jid = job_id(work, self.target.family.name)
        events = Events()
        runner = Runner(self.target)
        entry = {"command": work.command, "sources": list(work.inputs), "prompt": work.prompt, "requests": {}}
        if work.line is not None:
            entry["line"] = work.line
        try:
            jobs, extra = prepared_jobs(work, Context(self.target, work.media, work.generation, events))
            for n, job in enumerate(jobs, start=1):
                custom_id = jid if len(jobs) == 1 else f"{jid}#{n}"
                plan = runner.plan(job, stream=False)
                self.parts.write(request_line(custom_id, plan.request))
                entry["requests"][custom_id] = finisher_entry(job, plan)
        except MmcliError as exc:
            failed = {"id": jid, "sources": list(work.inputs), "error": error_fields(exc)}
            with self.lock:
                self.manifest["failed"].append(failed)
            self.progress.record(work.label, failed)
            return
        entry.update(extra)
        if work.generation.schema is not None:  # collect checks the answers against it, as a live run does
            entry["schema"] = dataclasses.asdict(work.generation.schema)
        if events.warnings:
            entry["warnings"] = list(events.warnings)
        with self.lock:
            self.manifest["jobs"][jid] = entry
        self.progress.record(work.label, {"seconds": time.monotonic() - started})
