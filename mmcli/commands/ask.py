"""`mmcli ask`: a question about any number of images (or none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .options import with_common_options

if TYPE_CHECKING:
    from ..config import CommonOptions

HELP = """Ask a vision-language model about images.

INPUTS are paths, http(s) URLs, data URLs, or - for standard input; the last argument is the question. Images are resized on this machine to exactly the pixel grid the model uses, so the upload is small and the token cost is known before sending (--dry-run shows it)."""

EPILOG = """Examples:

  mmcli ask photo.jpg "what's here"

  mmcli ask a.jpg b.png "what changed between these?"

  cat photo.jpg | mmcli ask - "describe"

  mmcli ask photo.jpg "what's here" --dry-run --json"""


@with_common_options
def ask(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="INPUT", show_default=False, help="Images or videos: paths, http(s) URLs, data URLs, or - for standard input.")] = None,
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", show_default=False, help="The question.")] = ...,
    opts: "CommonOptions" = None,
) -> None:
    """Ask a vision-language model about images."""
    from ..inputs import check_question
    from ..present import stream_answer
    from ..render import Output
    from ..tasks.ask import prepare_ask

    inputs = inputs or []
    check_question(inputs, prompt, 'mmcli ask photo.jpg "what is in this picture?"')
    out = Output(json_mode=opts.output.json)
    runner, job = prepare_ask(inputs, prompt, opts, out)
    if opts.output.dry_run:
        out.show_plan(runner.plan(job))
        return
    stream_answer(runner, job, out)
