"""A many-job run from start to end: settings, the endpoint(s), workers, results, summary and exit status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping, Optional

from ..errors import JobsFailed, MmcliError
from .work import ALLOWED, BatchFlags, Work, expand, fingerprint, job_id, numbered_copies, pages_for

if TYPE_CHECKING:
    from ..settings import CommonOptions
    from ..events import Events
    from ..media.audio import AudioOptions
    from ..events import Display
    from .pacing import Pacer
    from .progress import Progress
    from .results import Sink
    from .servers import Servers


def run_each(command: str, inputs: list[str], prompt: str, opts: "CommonOptions", flags: BatchFlags,
             out: "Display", task: object = None, audio: "Optional[AudioOptions]" = None) -> None:
    """`--each`: every input (a directory: its media files) becomes its own job with the same prompt."""
    refuse_dry_run(opts)
    works = each_works(command, inputs, prompt, opts, flags.recursive, task, audio)
    if flags.export:
        from .export import run_export

        return run_export(works, opts, flags, out, title=f"{command} --each --export")
    run_works(works, opts, flags, out, title=f"{command} --each")


def each_works(command: str, inputs: list[str], prompt: str, opts: "CommonOptions", recursive: bool,
               task: object = None, audio: "Optional[AudioOptions]" = None) -> list[Work]:
    """The jobs of `--each`: one per input (a directory: its media files), numbered when an input repeats."""
    paths = expand(inputs, recursive, ALLOWED[command])
    return numbered_copies([Work(command, (path,), prompt, opts.media, opts.generation, pages_for(task, path),
                                 audio=audio) for path in paths])


def refuse_dry_run(opts: "CommonOptions") -> None:
    """A many-job run has no single plan to show."""
    from ..errors import UsageError

    if opts.output.dry_run:
        raise UsageError("--dry-run shows one request, not a many-job run",
                         hint="leave out --each to see the plan of one input, or use --export openai-batch "
                              "FILE.jsonl to write every request without sending it")


def run_works(works: list[Work], opts: "CommonOptions", flags: BatchFlags, out: "Display", title: str,
              environ: Optional[Mapping[str, str]] = None, protected: tuple = ()) -> "Batch":
    """Send every piece of work, write a line per job, print the summary; exit 8 when any job failed."""
    from ..settings import resolve_settings
    from .engine import Engine
    from .guard import input_files, refuse_reading_files
    from .results import open_sink

    if flags.engine == "ray":
        from .ray_engine import run_on_ray

        return run_on_ray(works, opts, flags, out, title, (Batch, finish), environ, protected)
    settings = resolve_settings(opts.endpoint, environ)
    refuse_reading_files(flags.output, [*input_files(works), *protected])
    sink = open_sink(flags.output, out, table=bool(flags.table))
    try:
        batch, concurrency = start_batch(works, settings, opts, flags, sink, out, title, environ)
        progress = batch.progress
        progress.start()
        try:
            interrupted = Engine(works, batch.handle, concurrency).run(batch.stopping, sink.close)
        finally:
            progress.close()
    finally:
        sink.close()
    if flags.table:
        from .tables import show_table

        show_table(out, flags.table, [(work, batch.line_of(work)) for work in works])
    finish(batch, flags, out, interrupted)
    return batch


def start_batch(works: list[Work], settings, opts: "CommonOptions", flags: BatchFlags, sink: "Sink", events: "Events",
                title: str, environ: Optional[Mapping[str, str]] = None) -> tuple["Batch", int]:
    """The endpoint step on the first server that answers, then what every worker shares, and how many run at once."""
    from .pacing import Pacer
    from .progress import Progress, Tally
    from .servers import Servers, connect_first, refuse_keyless, targets_for

    target = connect_first(settings, opts.endpoint, events, environ)
    targets = targets_for(target, opts.endpoint, environ)
    refuse_keyless(targets)
    endpoint = settings.endpoint
    concurrency = flags.concurrency or endpoint.profile.default_concurrency(endpoint.base_url)
    progress = Progress(events, Tally(len(works)), title)
    return Batch(Servers(targets), Pacer(), sink, progress, flags.retry_failed, target.family.name,
                 target.model), concurrency


def finish(batch: "Batch", flags: BatchFlags, out: "Display", interrupted: bool) -> None:
    """The summary line, then the exit status: 130 after Ctrl-C, 8 when a job failed, else 0."""
    tally = batch.progress.tally
    where = f"; results in {flags.output}" if flags.output and batch.sink.lost is None else ""
    out.status(tally.summary() + where)
    if interrupted:
        raise KeyboardInterrupt
    batch.sink.raise_if_lost()
    failed = tally.failed + tally.failed_before
    if failed:
        raise JobsFailed(f"{failed} of {tally.total} job(s) failed", where=str(flags.output or ""),
                         hint="each failed line has an error field; run the same command again to finish, "
                              "with --retry-failed to try the failed jobs again")


class Batch:
    """What every worker shares: servers, the rate-limit gate, the results, the progress."""

    def __init__(self, servers: "Servers", pacer: "Pacer", sink: "Sink", progress: "Progress",
                 retry_failed: bool, family: str, model: Optional[str] = None) -> None:
        self.servers, self.pacer, self.sink, self.progress = servers, pacer, sink, progress
        self.retry_failed = retry_failed
        self.family, self.model = family, model
        self.written: dict[str, dict] = {}  # id -> the line this run wrote

    def line_of(self, work: Work) -> Optional[dict]:
        """The results line of `work`: written by this run, else by an earlier one (resumed), else None."""
        jid = job_id(work, self.family, self.model)
        return self.written.get(jid) or self.sink.previous.get(jid)

    def stopping(self, in_flight: int) -> None:
        """First Ctrl-C: say what happens next."""
        from .engine import GRACE_SECONDS

        self.progress.note(f"stopping: no new jobs; waiting up to {GRACE_SECONDS:g} s for {in_flight} in flight "
                           "(Ctrl-C again to stop now)")

    def handle(self, work: Work) -> None:
        """One job: skipped when its line is already there, else answered and written as one line."""
        from ..events import Events

        started = time.monotonic()
        jid = job_id(work, self.family, self.model)
        changed = None
        if work.given_id is not None:  # a line's own id: its job is done only if the line asks the same
            changed = fingerprint(work, self.family, self.model)
        before = self.sink.previous.get(jid)
        if (before is not None and not (before.get("error") and self.retry_failed)
                and (changed is None or before.get("fingerprint") == changed)):
            self.progress.skipped(failed_before=bool(before.get("error")))
            return
        events = Events()
        fields = self._attempt(work, events)
        record = {"id": jid, "command": work.command, "sources": work.sources, "prompt": work.prompt}
        if work.line is not None:
            record["line"] = work.line
        if changed is not None:
            record["fingerprint"] = changed
        record.update(fields)
        if events.warnings:
            record["warnings"] = list(events.warnings)
        record["seconds"] = round(time.monotonic() - started, 3)
        if self.sink.write(record):
            self.written[jid] = record
            self.progress.record(work.label, record)

    def _attempt(self, work: Work, events: "Events") -> dict:
        """Answer on the least busy server; a server that is down hands the job to another."""
        from ..urls import masked_url
        from ..errors import EndpointTimeout, EndpointUnavailable
        from ..core.runner import Runner
        from ..tasks.common import Context
        from .answer import answer

        avoid = None
        for _ in range(len(self.servers)):
            server = self.servers.acquire(avoid)
            target = server.target
            events.warnings.clear()  # a job handed to another server is prepared again
            ctx = Context(target, work.media, work.generation, events)
            try:
                fields = answer(work, Runner(target, pacer=self.pacer), ctx)
            except MmcliError as exc:
                error = exc
            else:
                self.servers.release(server, failed=False)
                if len(self.servers) > 1:
                    fields["server"] = masked_url(target.base_url)
                return fields
            down = isinstance(error, (EndpointUnavailable, EndpointTimeout))
            self.servers.release(server, failed=down)
            if not (down and len(self.servers) > 1):
                break
            avoid = server
        from .results import error_fields

        kept = dict(getattr(error, "partial_fields", None) or {})  # what was answered before it failed
        kept.pop("warnings", None)  # the line's warnings come from the events
        return {**kept, "error": error_fields(error)}


def run_tasks(path, parse, opts: "CommonOptions", flags: BatchFlags, out: "Display") -> None:
    """`mmcli batch TASKS.jsonl`: bad lines reported by number, every other line run as its own job."""
    from ..errors import UsageError
    from .tasksfile import read_tasks

    refuse_dry_run(opts)
    works, problems = read_tasks(path, parse, opts)
    works = numbered_copies(works)
    for problem in problems:
        out.warn(f"{path}, line {problem.line}: {problem.message}; the line is left out")
    if not works:
        raise UsageError("no job to run in the tasks file", where=str(path),
                         hint='each line is a JSON object like {"command": "ask", "inputs": ["a.jpg"], '
                              '"prompt": "caption"}')
    try:
        if flags.export:
            from .export import run_export

            run_export(works, opts, flags, out, title="batch --export")
        else:
            run_works(works, opts, flags, out, title="batch", protected=(("the tasks file", path),))
    except JobsFailed as failed:
        if problems:
            failed.why = f"and {len(problems)} bad line(s) were left out"
        raise
    if problems:
        raise JobsFailed(f"{len(problems)} line(s) of the tasks file could not run", where=str(path),
                         hint="the warnings above name each line and why; the other lines are done")
