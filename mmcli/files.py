"""Output files: checked before anything is sent, written atomically, never clobbered without --force.

Problems with where output goes (an output directory that is a file or cannot be written, a file
that exists, a path that is one of the inputs) exit 2: they are about how the command was called
(`-o`, `--force`), not about the input media (exit 3), and they are found before any request.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Iterable, Optional

from .errors import UsageError

# Hard links give a race-free "create only if absent"; these errors mean the filesystem has none.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


class OutputError(UsageError):
    """An output file or directory that cannot be used as asked."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def prepare_output_dir(path: Path, label: Optional[str] = None) -> Path:
    """Make sure `path` is a directory this process can create files in (created if missing)."""
    label = label or str(path)
    if path.exists() and not path.is_dir():
        raise OutputError("output directory is a file", where=label,
                          hint="pass a directory to -o, or leave -o out to write beside the input")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError("cannot create output directory", "a part of the path is a file, not a directory",
                          where=label, hint="pass a directory to -o") from None
    except OSError as exc:
        raise OutputError("cannot create output directory", _reason(exc), where=label) from None
    probe_writable(path, label)
    return path


def probe_writable(directory: Path, label: Optional[str] = None) -> None:
    """Create and remove a scratch file in `directory`: the only check that covers ACLs and read-only mounts."""
    label = label or str(directory)
    try:
        fd, scratch = _create_temp(directory, ".mmcli-probe")
    except OSError as exc:
        raise OutputError("output directory is not writable", _reason(exc), where=label,
                          hint="choose another directory with -o DIR") from None
    os.close(fd)
    os.unlink(scratch)


def check_target(path: Path, *, force: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse a target that is an input, a directory, or an existing file without --force."""
    for source in inputs:
        if _same_file(path, source):
            raise OutputError("refusing to overwrite an input", where=str(path),
                              hint="choose another output directory with -o DIR")
    if path.is_symlink() or path.exists():
        if path.is_dir():
            raise OutputError("output path is a directory", where=str(path))
        if not force:
            raise OutputError("output file exists", where=str(path),
                              hint="pass --force to overwrite it, or choose another directory with -o DIR")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            raise OutputError("output path is not a regular file", where=str(path))


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


def write_atomic(path: Path, data: bytes, *, force: bool = False) -> Path:
    """Write `data` to `path` via a temporary file in the same directory; never replace a file unless `force`."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = _create_temp(directory, path.name)
    except OSError as exc:
        raise OutputError("cannot write output file", _reason(exc), where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, path, force)
    except OSError as exc:
        raise OutputError("cannot write output file", _reason(exc), where=str(path)) from None
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    return path


def _publish(temp: str, path: Path, force: bool) -> None:
    if force:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails if the target appeared since it was checked
    except FileExistsError:
        raise OutputError("output file exists", where=str(path),
                          hint="pass --force to overwrite it, or choose another directory with -o DIR") from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise OutputError("output file exists", where=str(path),
                              hint="pass --force to overwrite it") from None
        os.replace(temp, path)
