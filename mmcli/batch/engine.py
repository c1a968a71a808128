"""Workers for a many-job run: N threads pull work lazily, so memory holds only what is in flight.

The main thread only waits, so Ctrl-C lands there: no new jobs are taken, the jobs in flight get a
short grace period, and a second Ctrl-C (or the end of the grace) aborts.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
GRACE_SECONDS = 10.0


class Engine:
    """Runs `handle(item)` for every item on `concurrency` threads."""

    def __init__(self, items: Iterable[T], handle: Callable[[T], None], concurrency: int) -> None:
        self.items: Iterator[T] = iter(items)
        self.handle = handle
        self.concurrency = max(1, concurrency)
        self.stop = threading.Event()  # set: take no new work
        self.in_flight = 0
        self.crash: Optional[BaseException] = None  # a bug in a worker ends the run and is re-raised
        self._lock = threading.Lock()

    def _next(self) -> tuple[bool, Optional[T]]:
        with self._lock:
            if self.stop.is_set():
                return False, None
            try:
                item = next(self.items)
            except StopIteration:
                return False, None
            self.in_flight += 1
            return True, item

    def _work(self) -> None:
        while True:
            more, item = self._next()
            if not more:
                return
            try:
                self.handle(item)
            except BaseException as exc:  # noqa: BLE001 - not hidden: the main thread re-raises it
                self.crash = self.crash or exc
                self.stop.set()
            finally:
                with self._lock:
                    self.in_flight -= 1

    def run(self, stopping: Callable[[int], None], aborting: Callable[[], None]) -> bool:
        """Run everything; True when Ctrl-C stopped the run (after `stopping`, and `aborting` if it had to)."""
        # Daemon threads: an aborted run must not wait for requests still on the wire.
        threads = [threading.Thread(target=self._work, name=f"mmcli-job-{n}", daemon=True)
                   for n in range(self.concurrency)]
        for thread in threads:
            thread.start()
        try:
            self._join(threads, None)
        except KeyboardInterrupt:
            self.stop.set()
            stopping(self.in_flight)
            try:
                finished = self._join(threads, time.monotonic() + GRACE_SECONDS)
            except KeyboardInterrupt:
                finished = False
            if not finished:
                aborting()
            return True
        if self.crash is not None:
            raise self.crash
        return False

    @staticmethod
    def _join(threads: list[threading.Thread], deadline: Optional[float]) -> bool:
        for thread in threads:
            while thread.is_alive():
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                thread.join(0.1)
        return True
