"""search as a task of the one driver: the index opened, the query embedded as the index was built, the rows
ranked by cosine (a pure finish)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from mmcli.errors import UsageError
from mmcli.core.job import Embedded
from ..planned import Planned

if TYPE_CHECKING:
    from mmcli.core.job import Job
    from mmcli.core.runner import Result
    from ..common import Context
    from .index import Index
    from mmcli.presets import Preset


@dataclass
class SearchArgs:
    """search's own arguments, as given."""

    query: Optional[str]
    index: Path
    image: Optional[str] = None
    top_k: int = 5
    open_sheet: bool = False
    preset: Optional[str] = None


@dataclass
class SearchSelection:
    """The query image (if any), the index and its preset, found before any server is asked."""

    checked: list
    index: "Index"
    preset: "Preset"


@dataclass
class SearchPlanned(Planned):
    """search's plan: the query's one job, and the index it is compared with."""

    index: Optional["Index"] = None
    preset: Optional["Preset"] = None
    top_k: int = 5
    query: Optional[str] = None  # the text searched for, as given
    image: Optional[str] = None  # the image searched with, as given


@dataclass
class Matches:
    """A search's outcome: the nearest rows of the index, best first, and the query's usage."""

    query: Optional[str]
    image: Optional[str]
    index: str
    model: str
    preset: str
    rows: int
    matches: list[dict]
    usage: dict
    warnings: list[str] = field(default_factory=list)


def check_search(args: SearchArgs) -> None:
    """A text or an image, not both, not empty; refused before anything is read."""
    if args.query is None and args.image is None:
        raise UsageError("nothing to search for", hint='give a text (mmcli search "a red car" --index DIR) or --image FILE')
    if args.query is not None and args.image is not None:
        raise UsageError("give a text or --image, not both", hint="one query at a time")
    if args.query is not None and not args.query.strip():
        raise UsageError("the query is empty", hint='give the words to search for: mmcli search "a red car" --index DIR')


def choose(checked: list, args: SearchArgs) -> SearchSelection:
    """The index opened (a missing one is a usage error) and its preset (or the one asked for) found."""
    from .index import open_index
    from mmcli.presets import get_preset

    index = open_index(args.index)
    if index is None:
        raise UsageError("no index here", where=str(args.index), hint="build one with mmcli embed FILES --index DIR")
    return SearchSelection(checked, index, get_preset(args.preset or index.preset))


def plan(selection: SearchSelection, args: SearchArgs, ctx: "Context") -> SearchPlanned:
    """The query's job, once the endpoint's model is known to be the index's."""
    from .index import check_compatible

    check_compatible(selection.index, ctx.target.model, selection.preset.name, "search the index")
    job = _query_job(args, selection.checked, selection.preset, ctx)
    return SearchPlanned([job], args.query or "", index=selection.index, preset=selection.preset, top_k=args.top_k,
                         query=args.query, image=args.image)


def finish(planned: SearchPlanned, results: list["Result"], warnings: list[str]) -> Matches:
    """The query's vector compared with every row (no match when the query was not answered)."""
    from .index import search
    from .jobs import finish_vector

    index = planned.index
    result = results[-1] if results else None
    hits = []
    if result is not None and result.ok and result.vector is not None:
        hits = search(index, finish_vector(result.vector, planned.preset), planned.top_k)
    return Matches(planned.query, planned.image, str(index.folder), index.model, index.preset,
                   len(index.entries), [_match(index, rank, row, score) for rank, (row, score) in enumerate(hits, 1)],
                   dict(result.usage) if result is not None else {}, list(warnings))


def fields(value: Matches) -> dict:
    """query, image, index, model, preset, rows, matches (rank, score, source, page, kind, path, thumbnail), usage."""
    return {"query": value.query, "image": value.image, "index": value.index, "model": value.model,
            "preset": value.preset, "rows": value.rows, "matches": value.matches, "usage": value.usage}


def _query_job(args: SearchArgs, checked: list, preset: "Preset", ctx: "Context") -> "Job":
    from mmcli.media.prepare import image_budget, image_item
    from .jobs import text_jobs

    if args.query is not None:
        return text_jobs([args.query], preset, ctx)[0]
    query = checked[0]
    item = image_item(query.source, query.image, image_budget(ctx.target.family, ctx.media),
                      lossless=ctx.media.lossless)
    return ctx.job([item], "", label=query.source.label, meta=Embedded(query.source.label, None, "image"))


def _match(index: "Index", rank: int, row: int, score: float) -> dict:
    entry = index.entries[row]
    return {"rank": rank, "score": round(score, 6), "source": entry.get("source"), "page": entry.get("page"),
            "kind": entry.get("kind"), "path": entry.get("path"), "thumbnail": entry.get("thumbnail")}
