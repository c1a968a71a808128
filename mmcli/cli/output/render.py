"""Output: the answer alone on stdout; status, progress and warnings on stderr.

What goes to a terminal is stripped of escape sequences and control characters (mmcli.terminal): a
model, a server or a file name must not be able to retitle, clear or rewrite the user's screen. What
goes to a pipe or a file is written exactly as it came.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator, Optional, TextIO

from mmcli.events import Events, Steps
from mmcli.urls import masked_url
from mmcli.core.plan import Plan
from mmcli.terminal import ControlFilter, for_stream, json_for_stream, plain, strip_controls


class AnswerSink:
    """Receives the answer as it streams and shows it; what was shown stays shown."""

    def write(self, delta: str) -> None:
        """Show one more piece of the answer."""

    def close(self) -> None:
        """The answer is over (complete or not): leave it on screen, cursor on a new line."""


class PlainAnswer(AnswerSink):
    """Plain text, written as it arrives: byte-exact to a pipe or file, control sequences removed on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.ended_with_newline = True
        self.filter = ControlFilter() if stream.isatty() else None

    def write(self, delta: str) -> None:
        shown = self.filter.feed(delta) if self.filter is not None else delta
        if not shown:
            return
        self.stream.write(shown)
        self.stream.flush()
        self.ended_with_newline = shown.endswith("\n")

    def close(self) -> None:
        if self.filter is not None:
            rest = self.filter.flush()
            if rest:
                self.stream.write(rest)
                self.ended_with_newline = rest.endswith("\n")
        if not self.ended_with_newline:
            self.stream.write("\n")
        self.stream.flush()


class Output(Events):
    """Where everything a command shows goes."""

    def __init__(self, json_mode: bool = False, stdout: Optional[TextIO] = None,
                 stderr: Optional[TextIO] = None) -> None:
        super().__init__()
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.spinning = None  # the spinner on stderr now, if any

    def status(self, message: str) -> None:
        """A progress or status line on stderr."""
        self._stderr_line(f"mmcli: {message}")

    def warn(self, message: str) -> None:
        """A warning on stderr."""
        self.warnings.append(message)
        self._stderr_line(f"mmcli: warning: {message}")

    def stderr_block(self, text: str) -> None:
        """Text on stderr as it is, unprefixed (e.g. the end of a server's log)."""
        self._stderr_line(text)

    def _stderr_line(self, text: str) -> None:
        # a running spinner is taken off its line first, so the text never lands after it (e.g. a retry's note)
        spinner = self.spinning
        if spinner is not None:
            spinner.stop()
        print(for_stream(text, self.stderr), file=self.stderr, flush=True)
        if spinner is not None:
            spinner.start()

    @contextmanager
    def spinner(self, message: str) -> Iterator[None]:
        """A spinner on stderr while something slow happens (silent when stderr is not a terminal)."""
        stop = self.start_spinner(message)
        try:
            yield
        finally:
            stop()

    def start_spinner(self, message: str):
        """Start a spinner on stderr (if it is a terminal); returns the function that stops it."""
        if not self.stderr.isatty():
            return lambda: None
        status = self.stderr_console().status(plain(message))
        status.start()
        self.spinning = status

        def stop() -> None:
            if self.spinning is status:
                self.spinning = None
            status.stop()

        return stop

    def steps(self, total: int, title: str) -> "Progress":
        """Progress over `total` steps: a bar on a terminal, a status line per step otherwise."""
        return Progress(self, total, title)

    @contextmanager
    def seconds(self, span: float, title: str):
        """A bar over the seconds of media being read, on a terminal; yields the function to advance it."""
        import math

        if not self.stderr.isatty():
            yield None
            return
        with Progress(self, int(math.ceil(span)), title) as bar:
            def advance(now: float) -> None:
                while bar.done < min(now, span):
                    bar.advance()

            yield advance

    def answer_sink(self) -> AnswerSink:
        """Where a streamed answer goes: nothing in JSON mode, Markdown on a terminal, else plain."""
        if self.json_mode:
            return AnswerSink()
        if self.stdout.isatty():
            from .markdown_blocks import BlockMarkdown

            return BlockMarkdown(self.stdout)
        return PlainAnswer(self.stdout)

    def line(self, text: str = "") -> None:
        """One line of text on stdout (a result, not a status)."""
        self.stdout.write(for_stream(text, self.stdout) + "\n")
        self.stdout.flush()

    def json_line(self, payload: dict) -> None:
        """One compact JSON object on its own line of stdout (JSON lines)."""
        self.stdout.write(json_for_stream(json.dumps(payload, ensure_ascii=False), self.stdout) + "\n")
        self.stdout.flush()

    def emit_json(self, payload: dict) -> None:
        """One JSON object on stdout."""
        self.stdout.write(json_for_stream(json.dumps(payload, ensure_ascii=False, indent=2), self.stdout) + "\n")
        self.stdout.flush()

    def emit_value(self, value: object) -> None:
        """A structured answer on stdout: indented on a terminal, one compact line when piped."""
        pretty = self.stdout.isatty()
        text = json.dumps(value, ensure_ascii=False, indent=2 if pretty else None,
                          separators=None if pretty else (",", ":"))
        self.stdout.write(json_for_stream(text, self.stdout) + "\n")
        self.stdout.flush()

    def console(self):
        """A rich console on stdout, for tables and highlighted JSON."""
        from rich.console import Console

        return Console(file=self.stdout, highlight=False)

    def stderr_console(self):
        """A rich console on stderr, for progress bars and spinners."""
        from rich.console import Console

        return Console(file=self.stderr)

    def show_plan(self, plan: Plan) -> None:
        """The dry-run plan: JSON, or a table plus the shortened request."""
        if self.json_mode:
            self.emit_json(plan.to_dict())
            return
        console = self.console()
        console.print(plan_table(plan))
        totals = plan.totals()
        tokens = totals["visual_tokens"]
        # Model ids come from the server: shown as plain text, never as markup or escape sequences.
        source = f" (from {plan.family_source})" if plan.family_source else ""
        console.print(plain(f"model: {plan.model or '(first model the endpoint serves)'}  "
                            f"family: {plan.family}{source}  endpoint: {masked_url(plan.base_url)}"))
        for note in plan.notes:
            console.print(plain(f"note: {note}"))
        console.print(f"total: {totals['items']} item(s), "
                      f"{'unknown' if tokens is None else f'{tokens:,}'} visual tokens, "
                      f"{totals['bytes']:,} bytes of media, request {totals['request_bytes']:,} bytes")
        console.print("request (nothing sent):")
        console.print_json(for_stream(json.dumps(plan.to_dict()["request"], ensure_ascii=False), self.stdout))


def _size(width: Optional[int], height: Optional[int]) -> str:
    return f"{width}x{height}" if width and height else "-"


def plan_table(plan: Plan):
    """A rich table of the plan's items."""
    from rich.table import Table

    table = Table(title="plan", title_justify="left")
    for column in ("input", "kind", "original", "sent", "visual tokens", "bytes", "notes"):
        table.add_column(column, justify="right" if column in ("visual tokens", "bytes") else "left")
    for item in plan.items:
        tokens = "?" if item.visual_tokens is None else f"{item.visual_tokens:,}"
        table.add_row(plain(item.source), item.kind, _size(item.original_width, item.original_height),
                      _size(item.sent_width, item.sent_height), tokens, f"{item.bytes:,}",
                      plain("; ".join(item.notes)))
    return table


class Progress(Steps):
    """Steps of a long job: a bar on stderr when it is a terminal, one status line per step otherwise."""

    def __init__(self, out: Output, total: int, title: str) -> None:
        self.out, self.total, self.title = out, total, title
        self.done = 0
        self.bar = None
        self.task = None

    def __enter__(self) -> "Progress":
        if self.out.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=self.out.stderr_console(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(strip_controls(self.title), total=self.total)
        return self

    def begin(self, what: str) -> None:
        """A step starts."""
        if self.bar is not None:
            self.bar.update(self.task, description=strip_controls(what))
        else:
            self.out.status(f"[{self.done + 1}/{self.total}] {what}")

    def advance(self) -> None:
        """A step is done."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1)

    def close(self) -> None:
        """Remove the bar (before anything else is printed)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __exit__(self, *exc_info: object) -> None:
        self.close()
