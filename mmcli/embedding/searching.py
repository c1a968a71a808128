"""The flow of `mmcli search`: open the index, embed the query like the index was built, rank by cosine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from ..job import Embedded

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..flow import Started
    from ..job import Job
    from ..render import Output
    from .index import Index
    from .presets import Preset

SHEET = "matches.png"


@dataclass
class SearchArgs:
    """search's own arguments, as given."""

    query: Optional[str]
    index: Path
    image: Optional[str] = None
    top_k: int = 5
    open_sheet: bool = False
    preset: Optional[str] = None


def _check(args: SearchArgs) -> None:
    if args.query is None and args.image is None:
        raise UsageError("nothing to search for", hint='give a text (mmcli search "a red car" --index DIR) or --image FILE')
    if args.query is not None and args.image is not None:
        raise UsageError("give a text or --image, not both", hint="one query at a time")
    if args.query is not None and not args.query.strip():
        raise UsageError("the query is empty", hint='give the words to search for: mmcli search "a red car" --index DIR')


def run_search(args: SearchArgs, opts: "CommonOptions") -> None:
    """Run `mmcli search` from its arguments and the shared options."""
    from ..flow import connect, open_inputs
    from ..render import Output
    from ..runner import RunStopped
    from .index import check_compatible, open_index, search
    from .jobs import finish_vector
    from .presets import get_preset

    _check(args)
    index = open_index(args.index)
    if index is None:
        raise UsageError("no index here", where=str(args.index), hint="build one with mmcli embed FILES --index DIR")
    preset = get_preset(args.preset or index.preset)
    out = Output(json_mode=opts.output.json)
    opened = open_inputs([args.image] if args.image is not None else [], opts, out, allowed=("image",))
    started = connect(opened, opts, out)
    check_compatible(index, started.ctx.target.model, preset.name, "search the index")
    job = _query_job(args, started, preset)
    if opts.output.dry_run:
        from .run import show_dry_run

        return show_dry_run(started.runner, iter([[job]]), preset, out)
    try:
        result = started.runner.embed([job], preset)[0]
    except RunStopped as stopped:
        raise stopped.cause from None
    hits = search(index, finish_vector(result.vector or [], preset), args.top_k)
    matches = [_match(index, rank, row, score) for rank, (row, score) in enumerate(hits, start=1)]
    if args.open_sheet:
        _write_sheet(index, matches, out)
    _show(args, index, matches, result.usage, out)


def _query_job(args: SearchArgs, started: "Started", preset: "Preset") -> "Job":
    from ..media.prepare import image_budget, image_item
    from .jobs import text_jobs

    ctx = started.ctx
    if args.query is not None:
        return text_jobs([args.query], preset, ctx)[0]
    checked = started.checked[0]
    item = image_item(checked.source, checked.image, image_budget(ctx.target.family, ctx.media),
                      lossless=ctx.media.lossless)
    return ctx.job([item], "", label=checked.source.label, meta=Embedded(checked.source.label, None, "image"))


def _match(index: "Index", rank: int, row: int, score: float) -> dict:
    entry = index.entries[row]
    return {"rank": rank, "score": round(score, 6), "source": entry.get("source"), "page": entry.get("page"),
            "kind": entry.get("kind"), "path": entry.get("path"), "thumbnail": entry.get("thumbnail")}


def _write_sheet(index: "Index", matches: list[dict], out: "Output") -> None:
    from ..files import write_atomic
    from .sheet import contact_sheet

    path = index.folder / SHEET
    write_atomic(path, contact_sheet(index.folder, matches), force=True)  # the index's own file, remade each search
    out.status(f"contact sheet: {path}")


def _show(args: SearchArgs, index: "Index", matches: list[dict], usage: dict, out: "Output") -> None:
    if out.json_mode:
        out.emit_json({"query": args.query, "image": args.image, "index": str(index.folder), "model": index.model,
                       "preset": index.preset, "rows": len(index.entries), "matches": matches, "usage": usage})
        return
    from rich.table import Table

    from ..terminal import plain

    table = Table(title=plain(f"{len(matches)} of {len(index.entries)} in {index.folder}"), title_justify="left")
    for column in ("#", "score", "source", "page"):
        table.add_column(column, justify="right" if column in ("#", "score", "page") else "left")
    for m in matches:
        table.add_row(str(m["rank"]), f"{m['score']:.4f}", plain(m["source"]), "" if m["page"] is None else str(m["page"]))
    out.console().print(table)
