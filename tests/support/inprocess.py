"""Run the mmcli command line inside the test process, isolated as a fresh process would be.

A new Python process per CLI test pays every import again (typer, rich, openai, PIL, numpy, cv2, av);
calling `mmcli.cli.app.main(argv)` in the test process pays them once per worker. What a process gives
for free is rebuilt around each call and undone afterwards:

- the environment: `os.environ` holds exactly the given mapping during the call (Typer reads its
  `envvar=` options, rich its COLUMNS, from `os.environ`; mmcli reads it at call time, never at import);
- stdin, stdout and stderr: byte buffers behind text streams that say whether they are a terminal,
  and file descriptors 1 and 2 (pipes, as a test's process has), so what C code or a child process
  writes there is caught as well;
- the working directory, `sys.argv`, signal handlers, warnings filters (set to Python's defaults,
  shown on stderr as a process shows them), the logging configuration, the umask;
- caches that live as long as a process (`PROCESS_CACHES`), emptied after each call.

What needs a real process (signals, Ctrl-C, a closed stdout, a real terminal, import-time behaviour,
`python -m mmcli` itself) uses the `mmcli_process` fixture instead.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional

# (module, attribute) of every module-level cache in mmcli that outlives one command; a CLI process
# starts with them empty. tests/test_inprocess_runner.py checks that no module-level cache is missing.
PROCESS_CACHES = (
    ("mmcli.net.openai_routes", "_CLIENTS"),  # one SDK client per endpoint (holds a connection pool)
    ("mmcli.net.transport", "_CLIENTS"),  # the same, where the HTTP transport keeps them
    ("mmcli.core.endpoint", "_LIMITS"),  # context length per endpoint and model
)

# The signals whose handlers a command may change (serve's supervision, Python's own defaults).
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD, signal.SIGALRM)


class RunTimedOut(BaseException):
    """The command ran longer than its timeout (a BaseException, so mmcli's error boundary lets it pass)."""


class _Buffer(io.BytesIO):
    """A byte stream that says whether it is a terminal and has no file descriptor, like a pipe
    in the tests' eyes but without one."""

    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        super().__init__(data)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def close(self) -> None:
        # The command may close its streams; the runner still reads what was written.
        pass


def _text(buffer: _Buffer, errors: str, line_buffering: bool = False) -> io.TextIOWrapper:
    # What Python gives a process whose locale is UTF-8: strict stdout, backslashreplace stderr.
    return io.TextIOWrapper(buffer, encoding="utf-8", errors=errors, line_buffering=line_buffering,
                            write_through=True)


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _Drain:
    """A pipe whose write end stands in for a file descriptor, read by a thread as it fills: fd 1 and 2
    stay pipes (`-o /dev/stdout` is not a regular file), and a long output cannot block the writer."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := os.read(self.read_end, 65536):
            self.chunks.append(chunk)

    def finish(self) -> bytes:
        """Everything written, once no copy of the write end is left open (or a child kept one)."""
        os.close(self.write_end)
        self.thread.join(timeout=5)  # a child process that outlives the command may hold the pipe
        return b"".join(self.chunks)


@contextmanager
def _descriptors() -> Iterator[tuple]:
    """File descriptors 1 and 2 pointed at pipes; yields the two drains."""
    drains = (_Drain(), _Drain())
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd, drain in zip((1, 2), drains):
            os.dup2(drain.write_end, fd)
        yield drains
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


@contextmanager
def _streams(stdin: bytes, stdout_tty: bool, stderr_tty: bool) -> Iterator[tuple[_Buffer, _Buffer]]:
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = _Buffer(tty=stdout_tty), _Buffer(tty=stderr_tty)
    sys.stdin = _text(_Buffer(stdin), "strict")
    sys.stdout = _text(out, "strict", line_buffering=stdout_tty)
    sys.stderr = _text(err, "backslashreplace", line_buffering=True)
    try:
        yield out, err
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # closed by the command, or its stdout "broke": what was written is kept
        sys.stdin, sys.stdout, sys.stderr = saved


@contextmanager
def _process_state(cwd: Path, args: list[str]) -> Iterator[None]:
    """cwd, argv, signal handlers, umask, logging and warnings as a new process has them."""
    saved_cwd, saved_argv = os.getcwd(), sys.argv
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    umask = os.umask(0o022)
    os.umask(umask)
    root = logging.getLogger()
    log_state = (root.handlers[:], root.level, logging.root.manager.disable)
    os.chdir(cwd)
    sys.argv = ["mmcli", *args]
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category in (("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                                     ("ignore", ImportWarning), ("ignore", ResourceWarning)):
                warnings.simplefilter(action, category, append=True)
            warnings.showwarning = _show_warning
            yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        os.umask(umask)
        root.handlers[:], root.level = log_state[0], log_state[1]
        logging.disable(log_state[2])


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Python's default display, to the stderr of the command (pytest would otherwise collect it).
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise RunTimedOut(f"the command ran longer than {seconds:g} s")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def forget_process_caches() -> None:
    """Empty every cache a CLI process would have started without (closing what holds sockets)."""
    for module_name, attribute in PROCESS_CACHES:
        module = sys.modules.get(module_name)
        cache = getattr(module, attribute, None) if module is not None else None
        if cache is None:
            continue
        for value in list(cache.values()):
            close = getattr(value, "close", None)
            if callable(close):
                close()
        cache.clear()


def run_in_process(args: list[str], env: Mapping[str, str], *, stdin: bytes = b"", cwd: Path,
                   timeout: float = 60, stdout_tty: bool = False, stderr_tty: bool = False
                   ) -> tuple[int, bytes, bytes]:
    """`mmcli ARGS` in this process: (exit status, stdout bytes, stderr bytes)."""
    from mmcli.cli.app import main

    forget_process_caches()
    with ExitStack() as stack:
        stack.enter_context(_environment(env))
        stack.enter_context(_process_state(cwd, args))
        fds = stack.enter_context(_descriptors())
        out, err = stack.enter_context(_streams(stdin, stdout_tty, stderr_tty))
        try:
            with _deadline(timeout):
                code = main(list(args))
        finally:
            forget_process_caches()
    # What reached the descriptors directly (C libraries, child processes) follows the Python output.
    return code, out.getvalue() + fds[0].finish(), err.getvalue() + fds[1].finish()
