"""`mmcli search` on the CLI: the query checked, then the one driver with the view that shows the matches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .search_task import SearchArgs, check_search

if TYPE_CHECKING:
    from ..config import CommonOptions

__all__ = ["SearchArgs", "run_search"]


def run_search(args: SearchArgs, opts: "CommonOptions") -> None:
    """Run `mmcli search` from its arguments and the shared options."""
    from ..driver import drive
    from ..render import Output
    from ..tasks.specs import TASKS
    from .presenters import SearchView

    check_search(args)
    out = Output(json_mode=opts.output.json)
    drive(TASKS["search"], [args.image] if args.image is not None else [], args.query or "", args, opts,
          SearchView(out, args.open_sheet))
