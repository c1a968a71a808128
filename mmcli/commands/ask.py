"""`mmcli ask`: a question about any number of images (or none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .batchopts import with_batch_options
from .options import with_common_options

if TYPE_CHECKING:
    from ..batch.work import BatchFlags
    from ..config import CommonOptions

HELP = """Ask a vision-language model about images.

INPUTS are paths, http(s) URLs, data URLs, or - for standard input; the last argument is the question. Images are resized on this machine to exactly the pixel grid the model uses, so the upload is small and the token cost is known before sending (--dry-run shows it)."""

EPILOG = """Examples:

  mmcli ask photo.jpg "what's here"

  mmcli ask a.jpg b.png "what changed between these?"

  cat photo.jpg | mmcli ask - "describe"

  mmcli ask photo.jpg "what's here" --dry-run --json"""


@with_common_options
@with_batch_options()
def ask(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="INPUT", show_default=False, help="Images or videos: paths, http(s) URLs, data URLs, or - for standard input.")] = None,
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", show_default=False, help="The question.")] = ...,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Ask a vision-language model about images."""
    from ..flow import start
    from ..inputs import check_question
    from ..present import stream_answer
    from ..render import Output
    from ..tasks.ask import ask_job

    inputs = inputs or []
    check_question(inputs, prompt, 'mmcli ask photo.jpg "what is in this picture?"')
    if batch.each:
        from ..batch.run import run_each

        return run_each("ask", inputs, prompt, opts, batch)
    out = Output(json_mode=opts.output.json)
    started = start(inputs, opts, out, allowed=("image", "video"))
    job = ask_job(started.checked, prompt, started.ctx)
    if opts.output.dry_run:
        out.show_plan(started.runner.plan(job))
        return
    stream_answer(started.runner, job, out)
