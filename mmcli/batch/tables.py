"""--format csv|jsonl: the answers of a many-file run as a table, one row per job, the source first."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Optional

from ..schema import flatten

if TYPE_CHECKING:
    from .work import Work
    from ..events import Display


def table_rows(lines: list[tuple["Work", Optional[dict]]]) -> tuple[list[str], list[dict]]:
    """(columns, rows): each job's answer flattened beside its source; a failed job's row has its error."""
    rows = []
    for work, line in lines:
        row: dict = {"source": ", ".join(work.sources)}  # a URL without its password
        if line is None:
            row["error"] = "not run (interrupted)"
        elif "error" in line:
            row["error"] = line["error"].get("message", "failed")
        else:
            row.update({f"answer.{k}" if k in ("source", "error") else k: v
                        for k, v in flatten(line.get("answer")).items()})
        rows.append(row)
    columns: dict[str, None] = {"source": None}
    for row in rows:
        columns.update(dict.fromkeys(k for k in row if k != "error"))
    if any("error" in row for row in rows):
        columns["error"] = None
    return list(columns), rows


# A spreadsheet runs a cell that starts with one of these as a formula; a model's text must not.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(columns: list[str], rows: list[dict]) -> str:
    """The table as CSV text, a header line first; text that a spreadsheet would run is quoted with '."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _inert(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def _inert(value: object) -> object:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def show_table(out: "Display", fmt: str, lines: list[tuple["Work", Optional[dict]]]) -> None:
    """Print the table on stdout in `fmt` (csv or jsonl)."""
    columns, rows = table_rows(lines)
    if fmt == "csv":
        out.line(csv_text(columns, rows).rstrip("\n"))
        return
    for row in rows:
        out.json_line({column: row.get(column) for column in columns})
