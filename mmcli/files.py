"""Output files: checked before anything is sent, written atomically, never clobbered without --force.

Problems with where output goes (an output directory that is a file or cannot be created or written,
a file that exists, a path that is one of the inputs) exit 2: they are about how the command was
called (`-o`, `--force`), not about the input media (exit 3), and they are found before any request.
A write that fails afterwards (a full disk, a directory removed meanwhile) is `OutputNotWritten`,
exit 9: the results were already paid for, so the caller shows them before exiting.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

from .errors import OutputError, OutputNotWritten, UsageError

# Hard links give a race-free "create only if absent"; these errors mean the filesystem has none.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)  # flock refused by the filesystem, not by another run


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# The options a command offers for an existing output: (overwrite, other directory); None where it has none.
Options = tuple[Optional[str], Optional[str]]
OPTIONS: Options = ("--force", "-o DIR")


def exists_hint(options: Options) -> str:
    """What the user can do about an existing output, with the options this command has."""
    force, directory = options
    ways = ([f"pass {force} to overwrite it"] if force else []) + \
        ([f"choose another directory with {directory}"] if directory else [])
    return ", or ".join(ways) or "choose another name"


def check_output_dir(path: Path, label: Optional[str] = None, option: str = "-o") -> None:
    """Refuse before sending a directory that is not one or cannot become one; create nothing.
    `option` is the command's option that names the directory."""
    label = label or str(path)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise OutputError("output directory is a file", where=label,
                          hint=f"pass a directory to {option}" + (", or leave -o out to write beside the input"
                                                                   if option == "-o" else ""))
    if existing != path and not existing.is_dir():
        raise OutputError("cannot create output directory", "a part of the path is a file, not a directory",
                          where=label, hint=f"pass a directory to {option}")
    try:
        probe_writable(existing)
    except OSError as exc:
        what = "output directory is not writable" if existing == path else "cannot create output directory"
        why = _reason(exc) if existing == path else f"{existing} is not writable: {_reason(exc)}"
        raise OutputError(what, why, where=label, hint=f"choose another directory with {option} DIR") from None


def make_output_dir(path: Path) -> Path:
    """Create `path` (and its parents) when the first file goes into it; checked earlier by check_output_dir."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritten("cannot create output directory", _reason(exc), where=str(path)) from None
    return path


def probe_writable(directory: Path) -> None:
    """Create and remove a scratch file in `directory`: the only check that covers ACLs and read-only mounts."""
    fd, scratch = _create_temp(directory, ".mmcli-probe")
    os.close(fd)
    os.unlink(scratch)


def check_target(path: Path, *, force: bool, inputs: Iterable[Path] = (), options: Options = OPTIONS) -> None:
    """Refuse a target that is an input, a directory, or an existing file without --force."""
    if is_input(path, inputs):
        raise OutputError("refusing to overwrite an input", where=str(path),
                          hint="choose another output directory with -o DIR")
    if path.is_symlink() or path.exists():
        if path.is_dir():
            raise OutputError("output path is a directory", where=str(path))
        if not force:
            raise OutputError("output file exists", where=str(path), hint=exists_hint(options))
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            raise OutputError("output path is not a regular file", where=str(path))


def is_input(path: Path, inputs: Iterable[Path]) -> bool:
    """Whether `path` names one of `inputs` (the same file by another name counts)."""
    return any(_same_file(path, source) for source in inputs)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _create_temp(directory: Path, stem: str) -> tuple[int, str]:
    # O_EXCL with a random name in the target's own directory, so os.replace stays a rename;
    # mode 0o666 lets the umask decide the final permissions, as for any other new file.
    for _ in range(16):
        name = os.path.join(directory, f".{stem}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(directory))


def write_atomic(path: Path, data: Union[bytes, Iterable[bytes]], *, force: bool = False,
                 mode: Optional[int] = None, options: Options = OPTIONS) -> Path:
    """Write `data` (bytes, or chunks of them) to `path` via a temporary file in the same directory; never
    replace a file unless `force`.

    `mode` sets the file's permissions exactly (a key file: 0o600); otherwise the umask decides."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = _create_temp(directory, path.name)
    except OSError as exc:
        raise OutputNotWritten("cannot write output file", _reason(exc), where=str(path)) from None
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # before any byte is written, and whatever the umask says
        with os.fdopen(fd, "wb") as handle:
            for chunk in [data] if isinstance(data, bytes) else data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, path, force, options)
    except OSError as exc:
        raise OutputNotWritten("cannot write output file", _reason(exc), where=str(path)) from None
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    return path


def _publish(temp: str, path: Path, force: bool, options: Options) -> None:
    if force:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails if the target appeared since it was checked
    except FileExistsError:
        raise OutputError("output file exists", where=str(path), hint=exists_hint(options)) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise OutputError("output file exists", where=str(path), hint=exists_hint(options)) from None
        os.replace(temp, path)


def small_text_file(path: Path, cap: int, name: str, hint: str) -> str:
    """A regular file's UTF-8 text, refused when over `cap` bytes or not a regular file (a device or FIFO
    could be read forever); FileNotFoundError and UnicodeDecodeError are the caller's."""
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer before the check below could refuse it
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
            what = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"over {cap:,} bytes"
            raise UsageError(f"cannot read {name}", what, where=str(path), hint=hint)
        return handle.read(cap + 1).decode("utf-8")


class LongLine:
    """A line over the cap of capped_lines: its size and its first and last bytes, never held whole."""

    def __init__(self, size: int, head: bytes, tail: bytes) -> None:
        self.size = size
        self.head = head
        self.tail = tail

    def __repr__(self) -> str:
        return f"LongLine(size={self.size})"


def capped_lines(handle, limit: int, keep: int = 1 << 16) -> Iterator[Union[bytes, LongLine]]:
    """The lines of a binary file: each line of up to `limit` bytes (its newline aside) whole, each longer one as
    a LongLine keeping `keep` bytes at either end. A line of gigabytes with no newline is never held in memory."""
    while True:
        raw = handle.readline(limit + 1)
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) <= limit:
            yield raw
            continue
        size, head, tail = len(raw), raw[:keep], raw[-keep:]
        del raw
        size, tail = _skip_line(handle, size, tail, keep)
        yield LongLine(size, head, tail)


def _skip_line(handle, size: int, tail: bytes, keep: int) -> tuple[int, bytes]:
    """Read on to the end of the line (its newline included): its size and last `keep` bytes."""
    seekable = handle.seekable()
    while True:
        # read() of a block, not readline(): readline gathers a long line 8 KB at a time, 15x slower
        block = handle.read(1 << 20) if seekable else handle.readline(1 << 20)
        if not block:
            return size, tail
        newline = block.find(b"\n")
        if newline >= 0 and newline + 1 < len(block):
            handle.seek(newline + 1 - len(block), os.SEEK_CUR)  # the next line starts there
            block = block[:newline + 1]
        size += len(block) - (newline >= 0)  # the newline is no part of the line
        tail = block[-keep:] if len(block) >= keep else (tail + block)[-keep:]
        if newline >= 0:
            return size, tail


@contextmanager
def flocked(path: Path, message: str, waiting: Optional[Callable[[str], None]] = None, *,
            exclusive: bool = True) -> Iterator[None]:
    """`path` (a file or folder, never written through this lock) locked with flock: exclusive, or shared.
    `waiting` hears `message` once when another run holds it. The kernel lets go when a process dies."""
    try:
        import fcntl
    except ImportError:  # no flock on this system: one writer at a time is then the user's business
        yield
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO there must not hang the open
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(message)
            fcntl.flock(fd, mode)
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                raise
            # a filesystem without flock: each write is still atomic, only runs at once are not kept apart
        yield
    finally:
        os.close(fd)  # closing the only descriptor of this open file releases the lock
