"""`mmcli search` on the CLI: the query checked, then the one driver with the view that shows the matches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmcli.tasks.embed.search import SearchArgs, check_search

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

__all__ = ["SearchArgs", "run_search"]


def run_search(args: SearchArgs, opts: "CommonOptions") -> None:
    """Run `mmcli search` from its arguments and the shared options."""
    from mmcli.core.driver import drive
    from .render import Output
    from mmcli.tasks.specs import TASKS
    from .show_vectors import SearchView

    check_search(args)
    out = Output(json_mode=opts.output.json)
    drive(TASKS["search"], [args.image] if args.image is not None else [], args.query or "", args, opts,
          SearchView(out, args.open_sheet))
