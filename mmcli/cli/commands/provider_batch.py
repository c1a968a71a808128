"""`mmcli batch submit | status | fetch`: an export run by a provider's Batch API (OpenAI, Parasail, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..options import with_options
from ..plain_values import PlainValuesCommand

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

# submit and fetch print status lines on stderr and (fetch) results lines, which are JSON already: only
# status has a --json of its own.
ENDPOINT_OPTIONS = ("profile", "base_url", "api_key_env", "timeout", "debug")
STATUS_JSON = {"json_output": 'Print {"batches": [...]}, one object per batch (file, batch id, status, counts, '
                              "output and error file ids, the provider's reasons), instead of text."}

SUBMIT_HELP = """Upload an export (every part) through the Batch API of the profile's endpoint and start one batch per part.

FILE.jsonl is what --export openai-batch wrote. The file and batch ids are recorded in FILE.manifest.json as they are made; run submit again to resubmit only the parts whose batch failed, expired or was cancelled. With --wait, the batches are watched with a progress bar and fetched when done."""

STATUS_HELP = """Show each submitted batch's state and request counts, with the provider's reason when it failed or expired."""

FETCH_HELP = """Download the finished batches' output and error files (saved beside FILE.jsonl) and collect them.

The results lines are the same as a live run's. Batches still running are named; run fetch again later: jobs already in the results file are skipped."""

EXPORT = Annotated[Path, typer.Argument(metavar="FILE.jsonl", show_default=False,
                                        help="The batch file --export openai-batch wrote (its manifest beside it).")]
RESULTS = Annotated[Optional[Path], typer.Option(
    "--output", "-o", metavar="FILE.jsonl", show_default=False,
    help="Write the results lines here (appended; jobs already done are skipped); default: stdout.")]


def register(app: typer.Typer) -> None:
    """Add submit, status and fetch to the `mmcli batch` group."""
    app.command("submit", help=SUBMIT_HELP, cls=PlainValuesCommand)(submit)
    app.command("status", help=STATUS_HELP, cls=PlainValuesCommand)(status)
    app.command("fetch", help=FETCH_HELP, cls=PlainValuesCommand)(fetch)


@with_options(*ENDPOINT_OPTIONS)
def submit(
    export: EXPORT,
    wait: Annotated[bool, typer.Option("--wait", help="Watch the batches until they are done, then fetch.")] = False,
    every: Annotated[float, typer.Option("--every", min=0.1, metavar="SECONDS",
                                         help="With --wait: seconds between two looks at the batches.")] = 30.0,
    results: RESULTS = None,
    opts: "CommonOptions" = None,
) -> None:
    """Upload an export and start its batches."""
    from mmcli.batch import provider
    from mmcli.batch.collect import read_manifest
    from mmcli.batch.submit import submit as send

    out, endpoint = _endpoint(opts)
    if wait:
        provider.check_results(export, read_manifest(export), results)  # before anything is sent
    send(export, endpoint, out)
    if wait:
        provider.wait(export, endpoint, out, every)
        provider.fetch(export, endpoint, results, out)


@with_options(*ENDPOINT_OPTIONS[:-1], "json_output", "debug", helps=STATUS_JSON)
def status(export: EXPORT, opts: "CommonOptions" = None) -> None:
    """Show each batch's state and counts."""
    from mmcli.batch import provider

    out, endpoint = _endpoint(opts)
    _, rows = provider.states(export, endpoint, out)
    if out.json_mode:
        out.emit_json({"batches": rows})
    else:
        for row in rows:
            out.line(provider.describe(row))
    problem = provider.broken(rows)
    if problem is not None:
        raise problem


@with_options(*ENDPOINT_OPTIONS)
def fetch(export: EXPORT, results: RESULTS = None, opts: "CommonOptions" = None) -> None:
    """Download the batches' outputs and collect them."""
    from mmcli.batch import provider

    out, endpoint = _endpoint(opts)
    provider.fetch(export, endpoint, results, out)


def _endpoint(opts: "CommonOptions"):
    from mmcli.settings import resolve_settings
    from ..output.render import Output

    return Output(json_mode=opts.output.json), resolve_settings(opts.endpoint).endpoint
