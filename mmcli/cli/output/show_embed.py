"""`mmcli embed` on the CLI: its arguments checked, then the one driver with the presenter for where vectors go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmcli.tasks.embed.task import EmbedArgs, check_args
from mmcli.presets import choose_preset

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

__all__ = ["EmbedArgs", "run_embed"]


def run_embed(args: EmbedArgs, opts: "CommonOptions") -> None:
    """Run `mmcli embed` from its arguments and the shared options, through the one driver."""
    from mmcli.core.driver import drive
    from .render import Output
    from mmcli.tasks.specs import TASKS
    from .show_vectors import IndexUpdate, VectorLines
    from mmcli.tasks.embed.task import embed_inputs

    check_args(args)
    if args.preset:
        choose_preset(args.preset, None, None)  # an unknown name is a usage error before anything else
    out = Output(json_mode=opts.output.json)
    presenter = IndexUpdate(out) if args.index is not None else VectorLines(out, args)
    try:
        drive(TASKS["embed"], embed_inputs(args.inputs), "", args, opts, presenter)
    finally:
        presenter.close()

