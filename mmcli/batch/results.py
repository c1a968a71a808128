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

from ..files import OutputError

if TYPE_CHECKING:
    from ..errors import MmcliError
    from ..render import Output


def error_fields(error: "MmcliError") -> dict:
    """A failed job's error: its exit code, its one-line message and the hint."""
    data = {"exit_code": int(error.exit_code), "message": error.message()}
    if error.hint:
        data["hint"] = error.hint
    return data


def structured(fields: dict, pieces: list, saved: Optional[dict]) -> dict:
    """`fields` with the answer checked against the run's --schema, as a live run checks it (exit 7 if not)."""
    if not saved:
        return fields
    from ..errors import MmcliError
    from ..schema import Schema

    schema = Schema(**saved)
    try:
        values = [schema.parse(piece.text, piece.finish_reason) for piece in pieces]
    except MmcliError as exc:
        return {**fields, "error": error_fields(exc)}
    fields["answer"] = values if fields.get("mode") == "per-page" else values[0]
    return fields


def read_lines(path: Path) -> tuple[list[dict], int]:
    """The JSON objects of a results file, and how many lines were not whole objects (a crash's torn line)."""
    records, broken = [], 0
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
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


class Sink:
    """Takes whole result lines from any thread; after `close()` it takes none (Ctrl-C twice)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        self.previous: dict[str, dict] = {}  # id -> last line already written (resume)

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


class ResultsFile(Sink):
    """A JSONL file opened for appending; each line goes out in one write call, so lines are never torn."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        records, self.broken = read_lines(path)
        self.previous = latest(records)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except IsADirectoryError:
            raise OutputError("results path is a directory", where=str(path),
                              hint="pass a file name such as results.jsonl to -o") from None
        except OSError as exc:
            raise OutputError("cannot open the results file", exc.strerror or str(exc), where=str(path)) from None
        if self._ends_torn():
            os.write(self.fd, b"\n")  # a line torn by a crash stays alone on its line, unread

    def _ends_torn(self) -> bool:
        size = os.fstat(self.fd).st_size
        if size == 0:
            return False
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            return handle.read(1) != b"\n"

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a regular file takes it in one call; the loop is for the rare short write
            written = os.write(self.fd, view)
            view = view[written:]

    def close(self) -> None:
        """Take no more lines and close the file."""
        with self.lock:
            if not self.closed:
                self.closed = True
                os.close(self.fd)


class StdoutLines(Sink):
    """Result lines on standard output (no -o): JSON lines through Output."""

    def __init__(self, out: "Output") -> None:
        super().__init__()
        self.out = out

    def _write(self, data: bytes) -> None:
        self.out.json_line(json.loads(data))


class Unshown(Sink):
    """No results file and no lines on stdout: a table of the answers is printed there instead (--format)."""

    def _write(self, data: bytes) -> None:
        pass


def open_sink(path: Optional[Path], out: "Output", table: bool = False) -> Sink:
    """The results file -o names (resumed if it exists), else standard output (unless a table goes there)."""
    if path is not None:
        return ResultsFile(path)
    return Unshown() if table else StdoutLines(out)
