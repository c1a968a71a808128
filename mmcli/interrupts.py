"""SIGTERM taken as Ctrl-C: a command stopped by `kill` (or a job scheduler) keeps what it finished, as a Ctrl-C
does, instead of dying with the default action."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def term_as_interrupt() -> Iterator[Callable[[], None]]:
    """SIGTERM raises KeyboardInterrupt inside the block (exit 130 at the boundary), and the handler there before
    is put back at the end; yields the function that puts the handler back in place after a library replaced it
    (ray.init installs Ray's own: a C++ crash dump, then sys.exit). Only the main thread can set it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt

    def install() -> None:
        signal.signal(signal.SIGTERM, interrupt)

    before = signal.getsignal(signal.SIGTERM)
    install()
    try:
        yield install
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


@contextmanager
def term_ends() -> Iterator[None]:
    """SIGTERM given its default action inside the block: where Ctrl-C stops only one thing and goes on (a chat
    stops one answer), a SIGTERM taken as Ctrl-C would never end the command."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
