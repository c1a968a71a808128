"""--schema and --format: structured answers, and tables of them from many-file runs."""

from __future__ import annotations

import functools
import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Callable, Optional

import typer

from .options import GENERATION

if TYPE_CHECKING:
    from ..batch.work import BatchFlags
    from ..settings import CommonOptions

TABLE_FORMATS = ("csv", "jsonl")

SchemaOption = Annotated[Optional[str], typer.Option(
    "--schema", metavar="SCHEMA", rich_help_panel=GENERATION, show_default=False,
    help="Answer as JSON matching SCHEMA: a JSON Schema file, inline JSON, or the short form "
         "\"total float, currency, date\" (types str int float bool, T[] for arrays; \"multi ...\" for a "
         "list of objects). The endpoint constrains its output; the answer is checked here (exit 7 if it "
         "does not match) and printed as JSON.")]
TableOption = Annotated[Optional[str], typer.Option(
    "--format", metavar="csv|jsonl", rich_help_panel="Many files", show_default=False,
    help="With --schema over many jobs (--each, or every line of mmcli batch): print a table on stdout, one "
         "row per job (the source first, then the answer's fields flattened), instead of the results lines.")]


def with_schema_options(before: str = "opts") -> Callable[[Callable], Callable]:
    """Add --schema and --format before the parameter `before`; the command gets its `opts` and `batch` with
    the schema loaded and the format set (apply_schema) before its own first line. It goes below
    with_batch_options, whose `batch` it needs."""
    added = [inspect.Parameter("schema", inspect.Parameter.KEYWORD_ONLY, annotation=SchemaOption, default=None),
             inspect.Parameter("table", inspect.Parameter.KEYWORD_ONLY, annotation=TableOption, default=None)]

    def decorate(func: Callable) -> Callable:
        from .options import spliced

        if not {"opts", "batch", before} <= set(inspect.signature(func).parameters):
            raise TypeError(f"{func.__name__} needs `opts`, `batch` and `{before}` parameters for --schema")

        @functools.wraps(func)
        def command(*, opts: "CommonOptions", batch: "BatchFlags", schema: Optional[str] = None,
                    table: Optional[str] = None, **kwargs):
            opts, batch = apply_schema(opts, batch, schema, table)
            return func(**kwargs, opts=opts, batch=batch)

        return spliced(func, command, added, before=before)

    return decorate


def apply_schema(opts: "CommonOptions", batch: "BatchFlags", schema: Optional[str],
                 table: Optional[str]) -> tuple["CommonOptions", "BatchFlags"]:
    """The options with the schema loaded and checked (before anything else runs) and the table format set."""
    from ..errors import UsageError

    if table is not None:
        table = table.lower()
        if table not in TABLE_FORMATS:
            raise UsageError("unknown table format", where=table, hint="use --format csv or --format jsonl")
        if not (batch.each and schema):
            raise UsageError("--format works with --each and --schema",
                             hint="e.g. mmcli ask --each receipts/ \"read it\" --schema \"total float\" --format csv")
        if batch.export:
            raise UsageError("--format cannot go with --export", "nothing is answered until the batch is collected")
        if batch.engine != "local":
            raise UsageError("--format cannot go with --engine ray", "Ray writes the results lines itself",
                             hint="run without --format, then read the results file (-o NAME.parquet or .jsonl)")
        batch = replace(batch, table=table)
    if schema is None:
        return opts, batch
    from ..schema import load_schema

    generation = replace(opts.generation, schema=load_schema(schema))
    return replace(opts, generation=generation), batch
