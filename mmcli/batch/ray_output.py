"""Parquet results of `--engine ray`: what is already there (resume), and the counts of a run whose rows Ray
writes itself. Each row: `id`, `status` (done or failed), `fingerprint`, and `line`, the job's results line
as JSON, the same line a local run writes."""

from __future__ import annotations

import os
from typing import Any

from ..errors import UsageError


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


def read_previous(ray: Any, location: str) -> dict[str, dict]:
    """id -> {"error", "fingerprint"} of the rows already written; a done row wins over a failed one."""
    if "://" not in location and not os.path.exists(location):
        return {}
    if "://" not in location and not os.path.isdir(location):
        raise UsageError("a Parquet output must be a folder", where=location,
                         hint="name a folder (created if missing); Ray writes its Parquet files into it")
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
