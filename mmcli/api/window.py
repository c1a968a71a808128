"""How far a many-file run from Python may get ahead of the loop reading it: as a generator, it goes on only
while it is read, with `size` jobs at once (`Client.each`, `Client.batch`)."""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


class Window:
    """At most `size` jobs are running or have a line the reader has not taken yet. A loop that was left
    (`break`) takes no more lines, so no new job starts; the jobs in flight finish and their lines are
    written, and kept for the next loop over the same run. `close()` lets every waiting worker go."""

    def __init__(self, size: int) -> None:
        self._free = max(1, size)
        self._changed = threading.Condition()
        self._closed = False
        self._mine = threading.local()  # per worker: did its job hand a line on (which then holds the slot)

    def works(self, works: Iterable[T]) -> Iterator[T]:
        """The jobs, each given out only when a slot is free; none once closed."""
        for work in works:
            with self._changed:
                while not self._free and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                self._free -= 1
            yield work

    def handled(self, handle: Callable[[T], None]) -> Callable[[T], None]:
        """`handle` that gives its slot back when its job left no line for the reader (skipped, or dropped)."""
        def run(work: T) -> None:
            self._mine.kept = False
            try:
                handle(work)
            finally:
                if not self._mine.kept:
                    self.give_back()
        return run

    def kept(self) -> None:
        """The current worker's job handed a line to the reader: the slot is the line's until it is read."""
        self._mine.kept = True

    def give_back(self) -> None:
        """A slot is free again (a line was read, or a job ended without one)."""
        with self._changed:
            self._free += 1
            self._changed.notify()

    def close(self) -> None:
        """No job is given out any more; workers waiting for a slot stop."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
