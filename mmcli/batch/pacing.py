"""Rate limits shared by every sender of a run: a 429 with Retry-After holds back all of them."""

from __future__ import annotations

import threading
import time


class Pacer:
    """A gate every request waits at; `pause(seconds)` closes it for everyone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold back every sender for `seconds` from now (the later end wins)."""
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        """Return once the gate is open."""
        while True:
            with self._lock:
                left = self._until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.25))
