"""A tasks file for `mmcli batch`: one JSON job per line, options under their flag names.

    {"id": "p1", "command": "ask", "inputs": ["a.jpg"], "prompt": "caption", "max-tokens": 60}
    {"command": "detect", "inputs": ["page.pdf"], "prompt": "every table", "pages": "1-3"}

Each line is parsed by the command's own option parser, so it is checked exactly as on a command
line; a bad line is reported with its number and the others still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import UsageError
from ..files import LongLine, capped_lines
from .taskdict import TaskError, split_task
from .work import Work

if TYPE_CHECKING:
    from ..settings import CommonOptions

# Set once for the whole run, on the mmcli batch command line.
RUN_ONLY = {"profile", "base-url", "api-key-env", "model", "family", "timeout", "autostart", "no-autostart",
            "json", "dry-run", "debug", "each", "recursive", "concurrency", "j", "retry-failed", "export",
            "batch-max-mb", "output", "o", "draw", "crop", "force", "format", "output-dir", "strict",
            "engine", "ray-address", "backend", "tensor-parallel-size", "max-model-len", "device", "engine-arg",
            "log", "no-log", "verify"}
MAX_LINE_BYTES = 1 << 20


@dataclass
class Problem:
    """A line that cannot run, and why."""

    line: int
    message: str


def read_tasks(path: Path, parse: Callable[..., dict], run_opts: "CommonOptions"
               ) -> tuple[list[Work], list[Problem]]:
    """Every runnable line as Work, and every bad line as a Problem (with its line number)."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise UsageError("cannot read the tasks file", exc.strerror or str(exc), where=str(path)) from None
    works, problems = [], []
    seen: dict[str, int] = {}
    with handle:
        for number, raw in enumerate(capped_lines(handle, MAX_LINE_BYTES), start=1):
            if isinstance(raw, LongLine):  # never read whole: its first bytes are enough to refuse it
                problems.append(Problem(number, "the line is longer than 1 MiB"))
                continue
            if not raw.strip():
                continue
            try:
                work = task_work(raw, number, parse, run_opts)
            except LineError as exc:
                problems.append(Problem(number, str(exc)))
                continue
            if work.given_id is not None and work.given_id in seen:
                problems.append(Problem(number, f"id {work.given_id!r} is also on line {seen[work.given_id]}"))
                continue
            if work.given_id is not None:
                seen[work.given_id] = number
            works.append(work)
    return works, problems


class LineError(Exception):
    """What is wrong with one line of a tasks file."""


def task_work(raw: bytes, number: int, parse: Callable[..., dict], run_opts: "CommonOptions") -> Work:
    """One line as Work; LineError says what is wrong with it."""
    if len(raw) > MAX_LINE_BYTES:
        raise LineError("the line is longer than 1 MiB")
    try:
        task = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LineError(f"not a JSON object: {exc}") from None
    try:
        task = split_task(task)
    except TaskError as exc:
        raise LineError(str(exc)) from None
    argv, off = _options_argv(task.options)
    argv += ["--", *task.inputs, task.prompt]
    try:
        params = parse(task.command, argv, off)
    except UsageError as exc:
        raise LineError(exc.message()) from None
    return Work(task.command, tuple(task.inputs), params.pop("__prompt__"),
                _merged(params["__opts__"].media, run_opts.media, params["__given__"]),
                _merged(params["__opts__"].generation, run_opts.generation, params["__given__"]),
                params.get("__task__"), given_id=task.given_id, line=number, audio=params.get("__audio__"))


def _options_argv(task: dict) -> tuple[list[str], dict[str, Optional[bool]]]:
    """The line's options as a command line, and the flags it sets to false or null (by long name)."""
    argv: list[str] = []
    off: dict[str, Optional[bool]] = {}
    for key, value in task.items():
        name = key.lstrip("-").replace("_", "-")
        if name in RUN_ONLY:
            raise LineError(f"{name!r} is set for the whole run (on the mmcli batch command line), not per line")
        if name in ("continue", "cid"):  # ask's follow-up of a logged conversation: one question, not a job
            raise LineError(f"{name!r}: a line is a job of its own; it cannot continue a conversation")
        if name in ("help", "version") or len(name) < 2:
            raise LineError(f"{key!r} is not an option a line can set; lines take options by their long "
                            "names, e.g. \"max-tokens\"")
        flag = "--" + name
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            off[name] = value  # false turns a run-level flag off for this line; null leaves the run's value
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        elif isinstance(value, (str, int, float)):
            argv += [flag, str(value)]
        else:
            raise LineError(f"the value of {key!r} must be a string, number, true/false or a list")
    return argv, off


def _merged(line, run, given: set[str]):
    """The line's options where the line sets them, else the run's (from the mmcli batch command line)."""
    return replace(run, **{f.name: getattr(line, f.name) for f in fields(line) if f.name in given})
