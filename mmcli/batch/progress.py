"""Progress of a many-job run: a rich bar on a terminal's stderr, else one status line per job."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..terminal import plain, strip_controls

if TYPE_CHECKING:
    from ..events import Display


@dataclass
class Tally:
    """Counts of a run: done, failed, skipped as done before, failed before and not retried."""

    total: int
    done: int = 0
    failed: int = 0
    already_done: int = 0
    failed_before: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        """Jobs accounted for so far."""
        return self.done + self.failed + self.already_done + self.failed_before

    def summary(self) -> str:
        """`N done, M failed, K already done` (and what was left alone)."""
        text = f"{self.done} done, {self.failed} failed, {self.already_done} already done"
        if self.failed_before:
            text += f", {self.failed_before} failed before (--retry-failed runs them again)"
        return text


class Progress:
    """Shows a Tally as it changes; safe to call from every worker."""

    def __init__(self, out: "Display", tally: Tally, title: str) -> None:
        self.out, self.tally, self.title = out, tally, title
        self.lock = threading.Lock()
        self.bar = None
        self.task = None

    def start(self) -> "Progress":
        """Show the bar (on a terminal)."""
        if self.out.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self.bar = Bar(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                           console=self.out.stderr_console(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(strip_controls(self.title), total=self.tally.total, stats=self._stats())
        return self

    def _stats(self) -> str:
        t = self.tally
        elapsed = max(time.monotonic() - t.started, 1e-6)
        rate = (t.done + t.failed) / elapsed
        return (f"done {t.done}  failed {t.failed}  skipped {t.already_done + t.failed_before}  "
                f"{rate:.2f}/s  {t.tokens:,} tokens")

    def record(self, label: str, record: dict) -> None:
        """A job finished (or failed): count it and show it."""
        with self.lock:
            error = record.get("error")
            if error:
                self.tally.failed += 1
            else:
                self.tally.done += 1
                self.tally.tokens += int((record.get("usage") or {}).get("total_tokens") or 0)
            if self.bar is not None:
                self.bar.update(self.task, advance=1, stats=self._stats())
                if error:
                    self.bar.console.print(plain(f"mmcli: failed: {label}: {error['message']}"))
                return
            n = self.tally.finished
            what = f"failed: {label}: {error['message']}" if error else f"done: {label} ({record['seconds']:.1f} s)"
            self.out.status(f"[{n}/{self.tally.total}] {what}")

    def skipped(self, failed_before: bool) -> None:
        """A job whose line is already in the results file was left alone."""
        with self.lock:
            if failed_before:
                self.tally.failed_before += 1
            else:
                self.tally.already_done += 1
            if self.bar is not None:
                self.bar.update(self.task, advance=1, stats=self._stats())

    def note(self, message: str) -> None:
        """A status line that does not belong to one job."""
        with self.lock:
            if self.bar is not None:
                self.bar.console.print(plain(f"mmcli: {message}"))
            else:
                self.out.status(message)

    def close(self) -> None:
        """Remove the bar."""
        with self.lock:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None
