"""Where a many-job run writes, checked before anything is sent: never a file the run reads, never a device.

Files are compared by identity (device and inode), not by name: a hard link, a symlink or another
spelling of an input's path is still that input.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Optional

from ..errors import OutputError


def _identity(path: Path) -> Optional[tuple[int, int]]:
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None  # absent (or a name no file can have): it cannot be a file the run reads
    return found.st_dev, found.st_ino


def refuse_reading_files(target: Optional[Path], protected: Iterable[tuple[str, object]], flag: str = "-o") -> None:
    """Refuse `target` when it is one of the `protected` files (what, path), whatever its name."""
    if target is None:
        return
    mine = _identity(target)
    if mine is None:
        return
    for what, path in protected:
        if isinstance(path, str) and "://" in path:
            continue  # a URL is no local file
        if _identity(Path(path)) == mine:
            raise OutputError(f"refusing to write into {what}", f"{flag} names {path}", where=str(target),
                              hint=f"give {flag} a file of its own, e.g. results.jsonl")


def refuse_holding(folder: Path, protected: Iterable[tuple[str, object]], flag: str = "-o") -> None:
    """Refuse an output folder (a Parquet one) that is, or holds, one of the `protected` files."""
    mine = folder.resolve()
    for what, path in protected:
        if isinstance(path, str) and "://" in path:
            continue  # a URL is no local file
        if mine == Path(path).resolve() or mine in Path(path).resolve().parents:
            raise OutputError(f"refusing to write into a folder that holds {what}", f"{flag} holds {path}",
                              where=str(folder), hint=f"give {flag} a folder of its own, e.g. results.parquet")


def refuse_planned(target: Optional[Path], planned: Iterable[tuple[str, Path]], flag: str = "-o") -> None:
    """Refuse `target` when the command itself writes a file of that name (which may not exist yet)."""
    if target is None:
        return
    for what, path in planned:
        if target.resolve() == path.resolve():
            raise OutputError(f"refusing to write into {what}", f"{flag} names {path}, which this command writes",
                              where=str(target), hint=f"give {flag} a file of its own, e.g. results.jsonl")


def refuse_device(target: Path, flag: str = "-o") -> None:
    """Refuse an existing output that is not a regular file: a device, a pipe, a terminal, a socket."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError("cannot use the output path", exc.strerror or str(exc), where=str(target)) from None
    if stat.S_ISDIR(mode):
        raise OutputError("output path is a directory", where=str(target),
                          hint=f"give {flag} a file name such as results.jsonl")
    if not stat.S_ISREG(mode):
        raise OutputError("output path is not a regular file", where=str(target),
                          hint=f"leave out {flag} to get the JSON lines on standard output, or name a file")


def refuse_reserved(target: Optional[Path], export: Path, parts: list[str], flag: str = "-o") -> None:
    """Refuse a results file named as the export's downloads and resubmissions are (FILE.output.jsonl,
    FILE.error.jsonl, FILE.earlier-N.output.jsonl, FILE.resubmit-N.jsonl), whether it exists yet or not."""
    import re

    if target is None:
        return
    folder = export.resolve().parent
    names = {p.name for p in (target.parent.resolve() / target.name, target.resolve()) if p.parent == folder}
    stems = [part.removesuffix(".jsonl") for part in parts]
    kinds = r"\.(output|error|earlier-[0-9]+\.output|resubmit-[0-9]+)\.jsonl"
    pattern = re.compile("(?:" + "|".join(map(re.escape, stems)) + ")" + kinds)
    if parts and any(pattern.fullmatch(name) for name in names):
        raise OutputError("refusing to write into a batch output file",
                          f"{flag} names {target.name}, a name kept for the export's downloads and resubmissions",
                          where=str(target), hint=f"give {flag} a file of its own, e.g. results.jsonl")


def check_results_place(target: Path, flag: str = "-o") -> None:
    """Refuse, before anything is sent, a results file that could not be opened: a device, a folder, no folder."""
    refuse_device(target, flag)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("the results file's folder does not exist", str(folder), where=str(target),
                          hint=f"create the folder first, or give {flag} a file in an existing one")


def input_files(works: Iterable) -> list[tuple[str, str]]:
    """Every input of every piece of work, as protected files."""
    return [("an input", spec) for work in works for spec in work.inputs]

