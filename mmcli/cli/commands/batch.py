"""`mmcli batch`: many jobs of any command from a tasks file; `mmcli batch collect` reads provider output back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..batch_options import with_batch_options
from ..options import with_common_options
from ..plain_values import PlainValuesCommand, PlainValuesGroup
from .provider_batch import register as register_provider_batches
from ..schema_options import with_schema_options

if TYPE_CHECKING:
    from mmcli.batch.work import BatchFlags
    from mmcli.settings import CommonOptions

RUN_HELP = """Run many jobs: each line of TASKS.jsonl is one job of ask, video, docqa or detect.

A line holds `command`, `inputs`, `prompt`, an optional `id`, and options under their long flag names, e.g. {"command": "ask", "inputs": ["a.jpg"], "prompt": "caption", "max-tokens": 60}; true turns a flag on, false off. Bad lines are reported with their line number and the others still run. Results: one JSON line per job (-o FILE, resumed when run again)."""

HELP = RUN_HELP + """

`mmcli batch TASKS.jsonl ...` alone means `mmcli batch run TASKS.jsonl ...`: `mmcli batch run --help` lists its options (-o, --engine ray, --retry-failed, --export, and every ask, video, docqa and detect option)."""

EPILOG = """Examples:

  mmcli batch tasks.jsonl -o results.jsonl

  mmcli batch tasks.jsonl -o results.jsonl --retry-failed

  mmcli batch tasks.jsonl --export openai-batch requests.jsonl --model qwen --family qwen2.5-vl

  mmcli batch collect requests.jsonl output.jsonl -o results.jsonl

  mmcli batch submit requests.jsonl --profile openai --wait -o results.jsonl"""


COLLECT_HELP = """Join a batch runner's output back to an export by custom_id and finish every job.

FILE.jsonl is what --export openai-batch wrote (FILE.manifest.json must be beside it); OUTPUT.jsonl is what the Batch API (OpenAI, Parasail) or vLLM's offline runner wrote for it, in any order. The results lines are the same as a live run's: answers, usage, the check against the plan, detections in the original image's pixels."""


class RunByDefault(PlainValuesGroup):
    """`mmcli batch FILE` means `mmcli batch run FILE`; collect, submit, status and fetch are the others."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """Put `run` in front unless a subcommand (or --help) comes first."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=RunByDefault, help=HELP, epilog=EPILOG, no_args_is_help=True, rich_markup_mode=None)


@app.command("run", help=RUN_HELP, epilog=EPILOG, cls=PlainValuesCommand)
@with_common_options
@with_batch_options(each=False)
@with_schema_options()
def run(
    tasks: Annotated[Path, typer.Argument(metavar="TASKS.jsonl", show_default=False,
                                          help="One JSON job per line.")],
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Run every job of a tasks file."""
    from mmcli.batch.run import run_tasks
    from ..output.render import Output

    run_tasks(tasks, parse_line, opts, batch, Output(json_mode=opts.output.json))


@app.command("collect", help=COLLECT_HELP, cls=PlainValuesCommand)
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
    from mmcli.batch.collect import collect as collect_output
    from ..output.render import Output

    collect_output(export, outputs, results, Output())


register_provider_batches(app)


def parse_line(command: str, argv: list[str], off: Optional[dict] = None) -> dict:
    """A tasks-file line parsed by the command's own parser: its options, task options and prompt.

    `off` names the flags the line sets to false (turned off even when the run turns them on) or to
    null (the run's value); each must be a flag of the command."""
    from typer._click.core import ParameterSource
    from typer._click.exceptions import ClickException
    from typer._click.globals import get_current_context

    from ..tasklines import task_parts
    from mmcli.errors import UsageError

    root = get_current_context().find_root()
    cmd = root.command.get_command(root, command)
    flags = {}
    for name, value in (off or {}).items():
        param = next((p for p in cmd.params if f"--{name}" in (*p.opts, *p.secondary_opts)), None)
        if param is None:
            raise UsageError(f"no such option: --{name}")
        if value is False and not getattr(param, "is_flag", False):
            raise UsageError(f"--{name} takes a value, not false")
        if value is False:
            flags[param.name] = f"--{name}" in param.opts  # "no-stream": false means streaming
    try:
        ctx = cmd.make_context(command, list(argv), parent=root)
    except ClickException as exc:
        raise UsageError(exc.format_message().rstrip(".")) from None
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    for name, on in flags.items():
        if name in given:
            raise UsageError(f"--{name.replace('_', '-')} is given twice")
        ctx.params[name] = not on
        given.add(name)
    return task_parts(command, dict(ctx.params), given)
