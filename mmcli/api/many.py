"""The Python API's many-file runs: `Client.each` and `Client.batch`, the same jobs, workers, results file and
resume as `--each` and `mmcli batch` (mmcli.batch), with each job's results line handed back as it finishes."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Optional

from ..batch.results import Sink
from ..errors import UsageError
from ..events import Events

if TYPE_CHECKING:
    from ..batch.progress import Tally
    from ..batch.results import ResultsFile
    from ..batch.work import BatchFlags, Work
    from ..settings import CommonOptions, Settings
    from .window import Window

TASK_HINT = 'each task is a dict like {"command": "ask", "inputs": ["a.jpg"], "prompt": "caption"}'
_END = object()


class _Feed(Sink):
    """Each whole line goes to the results file (when there is one), then to the reader of the Jobs."""

    def __init__(self, file: Optional["ResultsFile"]) -> None:
        super().__init__()
        self.file = file
        self.path = file.path if file is not None else None
        self.previous = file.previous if file is not None else {}
        self.lines: "queue.Queue[object]" = queue.Queue()
        self.window: Optional["Window"] = None  # set by the run: a line handed on holds its job's slot

    def write(self, record: dict) -> bool:
        """The line kept in the file, then handed on; False once the run was stopped (the line is dropped)."""
        with self.lock:
            if self.closed or (self.file is not None and not self.file.write(record)):
                return False
            self.lines.put(record)
            if self.window is not None:
                self.window.kept()
            return True

    def close(self) -> None:
        """Take no more lines; the results file is closed (and its lock released)."""
        with self.lock:
            self.closed = True
        if self.file is not None:
            self.file.close()

    def raise_if_lost(self) -> None:
        """Exit 9 when some lines could not be written to the file (the reader had them all)."""
        if self.file is not None:
            self.file.raise_if_lost()


class _Kept(Events):
    """Where a results file's lines go when the file cannot take them: nowhere, the reader has them already."""

    def json_line(self, payload: dict) -> None:
        """Already handed to the reader."""


class Jobs:
    """The results of a many-file run as its jobs finish: each item is the dict a results line holds (id,
    command, sources, prompt, the task's fields or `error`, warnings, seconds). Nothing is sent until the
    first item is asked for, and the run goes on only while it is read (`concurrency` jobs ahead at most): after
    `break` no new job starts, the jobs in flight finish and their lines are written and given by the next loop
    (with engine="ray", Ray Data's workers go on at their own pace; each line is written as its batch comes in).
    `close()`, `with` or Ctrl-C ends the run, keeps the lines already written and closes the results file.
    `tally` counts what was done, failed and skipped."""

    def __init__(self, works: list["Work"], settings: "Settings", common: "CommonOptions", flags: "BatchFlags",
                 title: str, environ: Optional[Mapping[str, str]] = None) -> None:
        self._flags = flags
        self._run = _Run(works, settings, common, flags, title, environ)
        # The lines' generator holds the run, never these Jobs: a loop left with `break` over an unnamed Jobs
        # drops the last reference, the generator is closed at once and its finally lets go of Ray and the file.
        self._lines = _lines(self._run)

    @property
    def tally(self) -> Optional["Tally"]:
        """What was done, failed and skipped (None until the run starts)."""
        return self._run.tally

    def __iter__(self) -> "Jobs":
        return self

    def __next__(self) -> dict:
        return next(self._lines)

    def __enter__(self) -> "Jobs":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the run: no new jobs; the lines written so far stay, the results file is closed."""
        self._lines.close()

    @property
    def failed(self) -> int:
        """How many jobs failed in this run (their items carry `error`)."""
        return self.tally.failed if self.tally is not None else 0

    def check(self) -> None:
        """Raise mmcli.JobsFailed (exit 8, as the CLI) when a job failed in this run or before it."""
        from ..errors import JobsFailed

        tally = self.tally
        if tally is not None and tally.failed + tally.failed_before:
            raise JobsFailed(f"{tally.failed + tally.failed_before} of {tally.total} job(s) failed",
                             where=str(self._flags.output or ""),
                             hint="each failed item has an error field; run again with the same output to finish, "
                                  "with retry_failed=True to try the failed jobs again")


class _Run:
    """What a run needs, held by its lines' generator (never the Jobs that read it); `tally` once it starts."""

    def __init__(self, works: list["Work"], settings: "Settings", common: "CommonOptions", flags: "BatchFlags",
                 title: str, environ: Optional[Mapping[str, str]]) -> None:
        self.works, self.settings, self.common, self.flags = works, settings, common, flags
        self.title, self.environ = title, environ
        self.tally: Optional["Tally"] = None

    def tallied(self, tally: "Tally") -> None:
        """The run's tally, read through Jobs.tally."""
        self.tally = tally


def _lines(run: _Run) -> Iterator[dict]:
    """Each job's line as it finishes; the results file is closed at the end, however the run ends."""
    from ..batch.results import ResultsFile

    events = _Kept()
    feed = _Feed(ResultsFile(run.flags.output, events, surface="api") if run.flags.output is not None else None)
    try:
        if run.flags.engine == "ray":
            from .many_ray import ray_lines

            yield from ray_lines(run.works, run.settings, run.common, run.flags, (feed, feed.lines), events,
                                 run.title, run.environ, run.tallied)
        else:
            yield from _local_lines(run, feed, events)
    finally:
        feed.close()
    feed.raise_if_lost()


def _local_lines(run: _Run, feed: _Feed, events: Events) -> Iterator[dict]:
    """The jobs on this process's threads, at most `concurrency` ahead of the reader."""
    from ..batch.engine import Engine
    from ..batch.run import start_batch
    from .window import Window

    engine = window = None
    failed: list[BaseException] = []
    try:
        batch, concurrency = start_batch(run.works, run.settings, run.common, run.flags, feed, events, run.title,
                                         run.environ)
        run.tallied(batch.progress.tally)
        window = feed.window = Window(concurrency)  # a loop that was left (break) starts no new job
        engine = Engine(window.works(run.works), window.handled(batch.handle), concurrency)
        threading.Thread(target=_work, args=(engine, feed, failed), name="mmcli-jobs", daemon=True).start()
        while True:
            line = _next_line(feed)
            if line is _END:
                break
            window.give_back()
            yield line
        if failed:
            raise failed[0]
    finally:
        if engine is not None:
            engine.stop.set()  # no new jobs; lines of jobs still in flight are dropped by the closed feed
        if window is not None:
            window.close()


def _work(engine, feed: _Feed, failed: list) -> None:
    """Every job on the engine's workers (no Ctrl-C lands in this thread: the reader's gets it), then the end;
    what the run raised (a worker's bug, a thread that could not start) goes to `failed` for the reader."""
    try:
        engine.run(lambda in_flight: None, feed.close)
    except BaseException as exc:  # noqa: BLE001 - not hidden: the reader raises it
        failed.append(exc)
    finally:
        feed.lines.put(_END)


def _next_line(feed: _Feed) -> object:
    """The next line; the wait wakes up often, so Ctrl-C in the reader's thread is felt at once."""
    while True:
        try:
            return feed.lines.get(timeout=0.2)
        except queue.Empty:
            continue


def batch_flags(output, concurrency, retry_failed: bool, recursive: bool = False, engine: str = "local",
                ray_address: Optional[str] = None) -> "BatchFlags":
    """The run's own keywords checked as the CLI checks -o, --concurrency, --retry-failed, --recursive, --engine,
    --ray-address."""
    from .keywords import checked
    from ..batch.guard import refuse_device
    from ..batch.work import BatchFlags

    given = checked("each", {"output": output, "concurrency": concurrency, "retry_failed": retry_failed,
                             "recursive": recursive, "engine": engine, "ray_address": ray_address})
    output = Path(given["output"]) if "output" in given else None
    if output is not None:
        refuse_device(output, "output")
    engine = given.get("engine", "local")
    _check_engine(engine, given.get("ray_address"), output)
    return BatchFlags(each=True, concurrency=given.get("concurrency"), output=output,
                      retry_failed=given.get("retry_failed", False), recursive=given.get("recursive", False),
                      engine=engine, ray_address=given.get("ray_address"))


def _check_engine(engine: str, ray_address: Optional[str], output: Optional[Path]) -> None:
    """ray_address only with engine="ray"; the API writes JSON lines, never Parquet."""
    if ray_address is not None and not ray_address.strip():
        raise UsageError("ray_address must be a Ray address", f"got {ray_address!r}",
                         hint='e.g. ray_address="head:6379"; leave it out for a local Ray')
    if ray_address is not None and engine != "ray":
        raise UsageError("ray_address works with engine=\"ray\"", hint='add engine="ray"')
    if engine == "ray" and output is not None and str(output).endswith(".parquet"):
        raise UsageError("the Python API writes JSON lines, not Parquet", where=str(output),
                         hint="name a .jsonl file, or run the CLI's --engine ray -o NAME.parquet")


def paths(inputs: list, what: str) -> list[str]:
    """Inputs of a many-file run as the CLI takes them: paths and URLs (each job is named by them)."""
    named = []
    for spec in inputs:
        if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
            raise UsageError(f"{what} takes paths and URLs", f"got {type(spec).__name__}",
                             hint="save images and arrays to files first, or ask about them one at a time")
        named.append(os.fspath(spec))
    return named


def each(flags_in: dict, task: str, inputs: list, prompt: str, parsed, environ=None) -> Jobs:
    """`--each` from Python: one job per input (a folder: its media files), the same ids as the CLI's."""
    from ..batch.run import each_works
    from ..settings import resolve_settings

    flags = batch_flags(**flags_in)
    works = each_works(task, paths(inputs, "each"), prompt, parsed.common, flags.recursive,
                       _task_options(task, prompt, parsed))
    return _jobs(works, resolve_settings(parsed.common.endpoint, environ), parsed.common, flags, f"{task} --each",
                 environ)


def _task_options(task: str, prompt: str, parsed):
    """What `--each` hands each job, as the CLI's commands do; ask: the video sampling Client.ask takes too
    (fps=, frames=, ...), or None when it is left as it is, so a job keeps the id it has without it."""
    from ..media.frames import SamplingOptions

    if task == "ask":
        return parsed.sampling if parsed.sampling != SamplingOptions() else None
    if task == "video":
        return parsed.sampling
    if task == "docqa":
        return parsed.doc
    return parsed.detect_options(prompt)


def _jobs(works: list["Work"], settings: "Settings", common: "CommonOptions", flags: "BatchFlags", title: str,
          environ=None) -> Jobs:
    from ..batch.guard import input_files, refuse_reading_files

    refuse_reading_files(flags.output, input_files(works), "output")
    return Jobs(works, settings, common, flags, title, environ)


def batch(tasks, flags_in: dict, parse, settings: "Settings") -> Jobs:
    """`mmcli batch` from Python: each task a dict like a tasks-file line ({"command", "inputs", "prompt", "id",
    options as keywords}); a bad task is refused, naming it, before anything is sent."""
    from dataclasses import replace

    from ..batch.work import Work, numbered_copies

    flags = replace(batch_flags(**flags_in), each=False)
    if isinstance(tasks, (str, bytes, dict)) or not hasattr(tasks, "__iter__"):
        raise UsageError("tasks must be a list of dicts", f"got {type(tasks).__name__}",
                         hint=TASK_HINT)
    works, seen = [], {}
    for number, task in enumerate(tasks, start=1):
        try:
            command, inputs, prompt, given_id, parsed = _task(task, parse)
        except UsageError as exc:
            raise UsageError(f"task {number}: {exc.what}", exc.why, where=exc.where, hint=exc.hint or TASK_HINT) from None
        if given_id is not None and given_id in seen:
            raise UsageError(f"task {number}: id {given_id!r} is also task {seen[given_id]}",
                             hint="give every task its own id, or none")
        if given_id is not None:
            seen[given_id] = number
        works.append(Work(command, tuple(inputs), prompt, parsed.common.media, parsed.common.generation,
                          _task_options(command, prompt, parsed), given_id=given_id))
    if not works:
        raise UsageError("no task to run", hint=TASK_HINT)
    common = parsed.common
    return _jobs(numbered_copies(works), settings, common, flags, "batch")


def _task(task: object, parse) -> tuple:
    """One task's command, inputs, prompt, id (the rules of a tasks file's line) and options (checked as the
    commands' keywords are)."""
    from ..batch.taskdict import TaskError, split_task

    try:
        found = split_task(task)
    except TaskError as exc:
        raise UsageError(str(exc)) from None
    # a key that is not text (5) cannot name an option: it is refused as an unknown one, by its repr
    options = {key.replace("-", "_") if isinstance(key, str) else repr(key): value
               for key, value in found.options.items()}
    return found.command, found.inputs, found.prompt, found.given_id, parse(found.command, options)
