"""Parquet results of `--engine ray`: what is already there (resume), and the counts of a run whose rows Ray
writes itself. Each row: `id`, `status` (done or failed), `fingerprint`, and `line`, the job's results line
as JSON, the same line a local run writes."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import OutputError, UsageError


class ParquetCounts:
    """Stands in for the results file: Ray writes the rows; the driver only counts them."""

    lost = None  # Ray's writer raises when it cannot write; nothing goes to standard output instead

    def __init__(self, location: str) -> None:
        self.location = location
        self.previous: dict[str, dict] = {}

    def write(self, record: dict) -> bool:
        """The line is written by Ray with the others."""
        return True

    def raise_if_lost(self) -> None:
        """Nothing is kept aside."""

    def close(self) -> None:
        """Nothing is open."""


@contextmanager
def folder_locked(location: str) -> Iterator[None]:
    """The Parquet folder held by this run, as a .jsonl results file is (flock, let go when the process ends): a
    second run into it is refused, not run twice. Made when missing, and removed again when the run leaves it
    empty; a URI (s3://...) is not locked."""
    if "://" in location:
        yield
        return
    if os.path.exists(location) and not os.path.isdir(location):
        raise UsageError("a Parquet output must be a folder", where=location,
                         hint="name a folder (created if missing); Ray writes its Parquet files into it")
    made = not os.path.exists(location)
    try:
        os.makedirs(location, exist_ok=True)
        fd = os.open(location, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError("cannot make the Parquet folder", exc.strerror or str(exc), where=location) from None
    held = False
    try:
        _lock(fd, location)
        held = True
        yield
    finally:
        os.close(fd)  # the only descriptor of this open folder: the lock goes with it
        if made and held:  # refused: the folder is the run's that holds it (made between our look and our lock)
            try:
                os.rmdir(location)  # only when empty: nothing was written
            except OSError:
                pass


def _lock(fd: int, location: str) -> None:
    import fcntl

    from ..files import NO_LOCKS

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputError("another run is writing to this results folder", where=location,
                          hint="wait for it to finish (then run again: done jobs are skipped), "
                               "or give -o another folder") from None
    except OSError as exc:
        if exc.errno not in NO_LOCKS:
            raise
        # a filesystem without flock: runs at once are then not kept apart


def read_previous(ray: Any, location: str) -> dict[str, dict]:
    """id -> {"error", "fingerprint"} of the rows already written; a done row wins over a failed one."""
    if "://" not in location and (not os.path.isdir(location) or not os.listdir(location)):
        return {}  # nothing written yet (the folder is made, empty, when the run starts)
    try:
        table = ray.data.read_parquet(location, columns=["id", "status", "fingerprint"]).to_arrow_refs()
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        if "no files" in str(exc).lower() or "not found" in str(exc).lower():
            return {}
        raise UsageError("cannot read the Parquet results already written", str(exc).splitlines()[0],
                         where=location, hint="name another folder, or remove this one to start again") from None
    previous: dict[str, dict] = {}
    for ref in table:
        for row in ray.get(ref).to_pylist():
            before = previous.get(row["id"])
            if before is None or before["error"]:
                previous[row["id"]] = {"error": row["status"] == "failed" or None, "fingerprint": row["fingerprint"]}
    return previous
