"""`mmcli batch`: many jobs of any command from a tasks file; `mmcli batch collect` reads provider output back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from typer.core import TyperGroup

from .batchopts import with_batch_options
from .options import with_common_options
from .schema_options import SchemaOption, TableOption

if TYPE_CHECKING:
    from ..batch.work import BatchFlags
    from ..config import CommonOptions

HELP = """Run many jobs: each line of TASKS.jsonl is one job of ask, video, docqa or detect.

A line holds `command`, `inputs`, `prompt`, an optional `id`, and options under their flag names, e.g. {"command": "ask", "inputs": ["a.jpg"], "prompt": "caption", "max-tokens": 60}. Bad lines are reported with their line number and the others still run. Results: one JSON line per job (-o FILE, resumed when run again)."""

EPILOG = """Examples:

  mmcli batch tasks.jsonl -o results.jsonl

  mmcli batch tasks.jsonl -o results.jsonl --retry-failed

  mmcli batch tasks.jsonl --export openai-batch requests.jsonl

  mmcli batch collect requests.jsonl output.jsonl -o results.jsonl"""


COLLECT_HELP = """Join a batch runner's output back to an export by custom_id and finish every job.

FILE.jsonl is what --export openai-batch wrote (FILE.manifest.json must be beside it); OUTPUT.jsonl is what the Batch API (OpenAI, Parasail) or vLLM's offline runner wrote for it, in any order. The results lines are the same as a live run's: answers, usage, the check against the plan, detections in the original image's pixels."""


class RunByDefault(TyperGroup):
    """`mmcli batch FILE` means `mmcli batch run FILE`; `collect` is the other subcommand."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """Put `run` in front unless a subcommand (or --help) comes first."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=RunByDefault, help=HELP, epilog=EPILOG, no_args_is_help=True, rich_markup_mode=None)


@app.command("run", help=HELP, epilog=EPILOG)
@with_common_options
@with_batch_options(each=False)
def run(
    tasks: Annotated[Path, typer.Argument(metavar="TASKS.jsonl", show_default=False,
                                          help="One JSON job per line.")],
    schema: SchemaOption = None,
    table: TableOption = None,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Run every job of a tasks file."""
    from ..batch.run import run_tasks
    from ..render import Output
    from .schema_options import apply_schema

    opts, batch = apply_schema(opts, batch, schema, table)
    run_tasks(tasks, parse_line, opts, batch, Output(json_mode=opts.output.json))


@app.command("collect", help=COLLECT_HELP)
def collect(
    export: Annotated[Path, typer.Argument(metavar="FILE.jsonl", show_default=False,
                                           help="The batch file --export wrote (its manifest beside it).")],
    outputs: Annotated[list[Path], typer.Argument(metavar="OUTPUT.jsonl", show_default=False,
                                                  help="The batch runner's output file(s), in any order.")],
    results: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE.jsonl", show_default=False,
        help="Write the results lines here (appended; jobs already done are skipped); default: stdout.")] = None,
) -> None:
    """Join a batch runner's output back to the export and finish each job."""
    from ..batch.collect import collect as collect_output
    from ..render import Output

    collect_output(export, outputs, results, Output())


def parse_line(command: str, argv: list[str]) -> dict:
    """A tasks-file line parsed by the command's own parser: its options, task options and prompt."""
    from typer._click.core import ParameterSource
    from typer._click.exceptions import ClickException
    from typer._click.globals import get_current_context

    from .tasklines import task_parts
    from ..errors import UsageError

    root = get_current_context().find_root()
    cmd = root.command.get_command(root, command)
    try:
        ctx = cmd.make_context(command, list(argv), parent=root)
    except ClickException as exc:
        raise UsageError(exc.format_message().rstrip(".")) from None
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    return task_parts(command, dict(ctx.params), given)
