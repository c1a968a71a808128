"""Where a many-job run's results go: one JSON line per job, whole, appended and flushed as it finishes.

A results file is never rewritten, only appended to, so a rerun with the same -o resumes: the last
line of each id says whether that job is done or failed.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import OutputError, UsageError
from ..files import LongLine, capped_lines
from ..limits import MAX_REPLY_LINE
from .work import Work, fingerprint, job_id

if TYPE_CHECKING:
    from ..errors import MmcliError
    from ..events import Display


def error_fields(error: "MmcliError") -> dict:
    """A failed job's error: its exit code, its one-line message and the hint."""
    data = {"exit_code": int(error.exit_code), "message": error.message()}
    if error.hint:
        data["hint"] = error.hint
    return data


def read_lines(path: Path) -> tuple[list[dict], int]:
    """The JSON objects of a results file, and how many lines were not whole objects (a crash's torn line)."""
    records, broken = [], 0
    try:
        with open(path, "rb") as handle:
            for raw in capped_lines(handle, MAX_REPLY_LINE):
                if isinstance(raw, LongLine):  # not a line mmcli wrote: its job runs again
                    broken += 1
                    continue
                if not raw.strip():
                    continue
                try:  # a file name that is not UTF-8 is written as its own bytes (Sink.write): read back the same
                    record = json.loads(raw.decode("utf-8", "surrogateescape"))
                except ValueError:
                    broken += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    records.append(record)
                else:
                    broken += 1
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError("cannot read the results file", exc.strerror or str(exc), where=str(path)) from None
    return records, broken


def latest(records: list[dict]) -> dict[str, dict]:
    """The last line of each id (a retried job's new line wins)."""
    return {r["id"]: r for r in records}


# Where the lines a results file could not take went instead, and how to name the file again: the CLI prints
# them on standard output; the Python API has handed every line to the loop reading the run already.
KEPT = {"cli": ("were printed on standard output; save them, then run again with -o", "-o"),
        "api": ("were given to your loop over the Jobs (keep those items); run again with output=", "output=")}


class Sink:
    """Takes whole result lines from any thread; after `close()` it takes none (Ctrl-C twice)."""

    surface = "cli"  # whose words the lost-lines error uses (KEPT)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        self.previous: dict[str, dict] = {}  # id -> last line already written (resume)
        self.lost: Optional[str] = None  # why some lines went to standard output instead of the file
        self.unshown = 0  # lines that could be written nowhere
        self.path: Optional[Path] = None
        self.out: Optional["Display"] = None

    def write(self, record: dict) -> bool:
        """Write one line; False when the sink is closed and the line was dropped."""
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self.lock:
            if self.closed:
                return False
            self._write(line.encode("utf-8", "surrogateescape"))
            return True

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Take no more lines."""
        with self.lock:
            self.closed = True

    def raise_if_lost(self) -> None:
        """Exit 9 when lines could not be kept in the file (they were shown on standard output instead)."""
        if self.lost is None:
            return
        from ..errors import OutputNotWritten

        if self.path is None or self.unshown:
            raise OutputNotWritten("cannot write the results", self.lost, where=str(self.path or "standard output"),
                                   hint=f"{self.unshown} line(s) could be written nowhere; run again with "
                                        f"{KEPT[self.surface][1]} on a disk with room (jobs already in it are skipped)")
        raise OutputNotWritten("cannot write the results file", self.lost, where=str(self.path),
                               hint=f"the lines that are not in the file {KEPT[self.surface][0]} on a disk with "
                                    "room (the jobs in the file are skipped)")

    def _show(self, data: bytes) -> None:
        """A line on standard output; when that fails too (a full disk behind it), it is counted as lost."""
        import errno

        try:
            self.out.json_line(json.loads(data.decode("utf-8", "surrogateescape")))  # as Sink.write encoded it
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # the reader went away: the run ends as any closed pipe does
            self.lost = self.lost or (exc.strerror or str(exc))
            self.unshown += 1


class ResultsFile(Sink):
    """A JSONL file opened for appending; each line goes out in one write call, so lines are never torn.

    The file is locked while a run writes to it, so two runs on one file do not both do every job. A
    line that cannot be written (a full disk) is cut back out and goes to standard output, and so do
    the run's lines when the file was removed meanwhile: nothing received is lost."""

    def __init__(self, path: Path, out: "Display", surface: str = "cli") -> None:
        super().__init__()
        self.path, self.out, self.surface = path, out, surface
        self.fd = _open_locked(path, KEPT[surface][1])
        try:
            records, self.broken = read_lines(path)
            _refuse_other_files(path, self.fd, records, self.broken, KEPT[surface][1])
            self.previous = latest(records)
            if self._ends_torn():
                os.write(self.fd, b"\n")  # a line torn by a crash stays alone on its line, unread
            found = os.fstat(self.fd)
        except BaseException:
            os.close(self.fd)
            raise
        self.identity, self.start = (found.st_dev, found.st_ino), found.st_size

    def _ends_torn(self) -> bool:
        size = os.fstat(self.fd).st_size
        if size == 0:
            return False
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            return handle.read(1) != b"\n"

    def _write(self, data: bytes) -> None:
        if self.lost is None:
            before = os.fstat(self.fd).st_size
            try:
                view = memoryview(data)
                while view:  # a regular file takes it in one call; the loop is for the rare short write
                    written = os.write(self.fd, view)
                    view = view[written:]
                return
            except OSError as exc:
                self.lost = exc.strerror or str(exc)
                try:
                    os.ftruncate(self.fd, before)  # only whole lines stay in the file
                except OSError:
                    pass  # a line cut short is read as torn and its job runs again
        self._show(data)

    def close(self) -> None:
        """Take no more lines and close the file; when it was removed meanwhile, show what it held."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.lost is None and _identity(self.path) != self.identity:
                self.lost = "the file (or its folder) was removed during the run"
                self._show_written()
            os.close(self.fd)

    def _show_written(self) -> None:
        offset, end = self.start, os.fstat(self.fd).st_size
        blocks = []
        while offset < end:  # the removed file is still readable through its descriptor
            block = os.pread(self.fd, min(end - offset, 1 << 20), offset)
            if not block:
                break
            blocks.append(block)
            offset += len(block)
        for raw in b"".join(blocks).splitlines():
            if raw.strip():
                self._show(raw)


def _identity(path: Path) -> Optional[tuple[int, int]]:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _open_locked(path: Path, flag: str) -> int:
    """The results file opened for appending (and reading back), refused when it is no regular file or
    another run holds it."""
    import fcntl
    import stat

    from .guard import refuse_device

    refuse_device(path, flag)
    try:
        # O_NONBLOCK: a pipe that appeared since the check must not hang the open; files ignore it.
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except IsADirectoryError:
        raise OutputError("results path is a directory", where=str(path),
                          hint=f"pass a file name such as results.jsonl to {flag}") from None
    except OSError as exc:
        raise OutputError("cannot open the results file", exc.strerror or str(exc), where=str(path)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            refuse_device(path, flag)
            raise OutputError("output path is not a regular file", where=str(path))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError("another run is writing to this results file", where=str(path),
                              hint="wait for it to finish (then run again: done jobs are skipped), "
                                   f"or give {flag} another file") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


class StdoutLines(Sink):
    """Result lines on standard output (no -o): JSON lines through Output."""

    def __init__(self, out: "Display") -> None:
        super().__init__()
        self.out = out

    def _write(self, data: bytes) -> None:
        self._show(data)


class Unshown(Sink):
    """No results file and no lines on stdout: a table of the answers is printed there instead (--format)."""

    def _write(self, data: bytes) -> None:
        pass


def _refuse_other_files(path: Path, fd: int, records: list[dict], broken: int, flag: str) -> None:
    """Lines are appended only to a results file: an existing file that holds no results line and does not
    start like one (a photo, notes, another program's JSON) is refused before anything is sent. The one file
    of no results line that is taken is a first line torn by a crash: it is not JSON at all."""
    # every line mmcli writes names its command: lines of another program's JSON Lines (a data set's {"id": ...})
    # are not results, and that file is not appended to
    if any(isinstance(record.get("command"), str) for record in records) or os.fstat(fd).st_size == 0:
        return
    head = os.pread(fd, 64, 0).lstrip()
    if broken > 1 or (head and not head.startswith(b"{")) or _whole_json(fd):
        raise UsageError("refusing to append results to a file that is not a results file", where=str(path),
                         hint=f"give {flag} a new file name, or a results file of an earlier run to resume it")


def _whole_json(fd: int) -> bool:
    """Whether the file's first line is JSON whole (another program's object, as `{"theme": "dark"}`)."""
    first = os.pread(fd, MAX_REPLY_LINE, 0).lstrip().split(b"\n", 1)[0]
    try:
        json.loads(first.decode("utf-8", "surrogateescape"))
    except ValueError:
        return False
    return True


def open_sink(path: Optional[Path], out: "Display", table: bool = False) -> Sink:
    """The results file -o names (resumed if it exists), else standard output (unless a table goes there)."""
    if path is not None:
        return ResultsFile(path, out)
    return Unshown() if table else StdoutLines(out)


def line_start(work: Work, family: str, model: Optional[str], previous: dict, retry_failed: bool
               ) -> tuple[dict, Optional[str]]:
    """The head of `work`'s results line (id, command, sources, prompt, ...), and "skipped" or "failed-before"
    when its line is already in the results and is not to be run again (else None)."""
    jid = job_id(work, family, model)
    changed = None
    if work.given_id is not None:  # a line's own id: its job is done only if the line asks the same
        changed = fingerprint(work, family, model)
    before = previous.get(jid)
    if (before is not None and not (before.get("error") and retry_failed)
            and (changed is None or before.get("fingerprint") == changed)):
        return {"id": jid}, "failed-before" if before.get("error") else "skipped"
    record = {"id": jid, "command": work.command, "sources": work.sources, "prompt": work.prompt}
    if work.line is not None:
        record["line"] = work.line
    if changed is not None:
        record["fingerprint"] = changed
    return record, None


def line_end(record: dict, fields: dict, warnings: list, seconds: float) -> dict:
    """The whole results line: its head, the task's fields (or the error), the warnings and the time taken."""
    record = {**record, **fields}
    if warnings:
        record["warnings"] = list(warnings)
    record["seconds"] = round(seconds, 3)
    return record
