"""What a running task tells its caller: status, warnings, progress. Silent unless a caller shows them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Protocol, TextIO


class Steps:
    """Progress over a known number of steps; this base shows nothing."""

    done = 0

    def begin(self, what: str) -> None:
        """A step starts."""

    def advance(self) -> None:
        """A step is done."""
        self.done += 1

    def close(self) -> None:
        """No more steps will be shown."""

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Events:
    """Receives what a task reports; the CLI's Output shows it, the Python API keeps the warnings."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def status(self, message: str) -> None:
        """A progress or status line."""

    def warn(self, message: str) -> None:
        """Something the user should know about the result."""
        self.warnings.append(message)

    def stderr_block(self, text: str) -> None:
        """Diagnostic text such as the end of a server's log; kept with the warnings."""
        self.warnings.append(text)

    @contextmanager
    def spinner(self, message: str) -> Iterator[None]:
        """Something slow is happening."""
        yield

    def steps(self, total: int, title: str) -> Steps:
        """Progress over `total` steps."""
        return Steps()

    @contextmanager
    def seconds(self, span: float, title: str) -> Iterator[None]:
        """Progress over seconds of media being read; yields a function told how far it got, or None."""
        yield None


class Display(Protocol):
    """What code below the CLI may ask of the output it is handed (the CLI's Output is one): what Events
    hears, plus lines and JSON on stdout and rich consoles, so no module under the CLI imports the CLI."""

    json_mode: bool
    stderr: TextIO

    def status(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def stderr_block(self, text: str) -> None: ...
    def spinner(self, message: str) -> Any: ...
    def steps(self, total: int, title: str) -> Steps: ...
    def line(self, text: str = "") -> None: ...
    def json_line(self, payload: dict) -> None: ...
    def emit_json(self, payload: dict) -> None: ...
    def show_plan(self, plan: Any) -> None: ...
    def console(self) -> Any: ...
    def stderr_console(self) -> Any: ...
