"""embed's jobs in batches, built lazily; the dry run's plans; an index row from a result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

from .jobs import page_jobs, text_jobs

if TYPE_CHECKING:
    from mmcli.core.job import Job
    from mmcli.media.document import Selected
    from mmcli.events import Display
    from mmcli.core.runner import Result, Runner
    from ..common import Context
    from .index import Index
    from mmcli.presets import Preset


def count_jobs(selected: list["Selected"], texts: list[str]) -> int:
    """How many vectors the run makes."""
    return sum(len(s.pages) for s in selected) + len(texts)


def job_stream(selected: list["Selected"], texts: list[str], preset: "Preset", ctx: "Context",
               hashes: Optional[dict] = None) -> Iterator["Job"]:
    """Jobs in input order; each input is rendered only when its turn comes, so memory stays flat."""
    from mmcli.media.document import render
    from mmcli.media.prepare import image_budget

    budget = image_budget(ctx.target.family, ctx.media)
    for entry in selected:
        for job in page_jobs(render([entry], budget, lossless=ctx.media.lossless, warn=ctx.events.warn), ctx):
            if hashes is not None:
                job.meta.sha256 = hashes.get(entry.source.label)
            yield job
    yield from text_jobs(texts, preset, ctx)


def batch_stream(jobs: Iterator["Job"], size: int) -> Iterator[list["Job"]]:
    """The jobs grouped into requests of at most `size` conversations."""
    batch: list = []
    for job in jobs:
        batch.append(job)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def show_dry_run(runner: "Runner", stream: Iterator[list["Job"]], preset: "Preset", out: "Display") -> None:
    """The preset's conventions and every request's plan; nothing is sent."""
    plans = [runner.plan_embedding(batch, preset) for batch in stream]
    if out.json_mode:
        out.emit_json({"preset": preset.describe(), "requests": [p.to_dict() for p in plans]})
        return
    conventions = preset.describe()
    out.line(f"preset {preset.name} ({preset.models}):")
    for key in ("image_text", "text_format", "image_system", "text_system", "placeholder_image", "normalize",
                "generation_prompt", "chat_template"):
        out.line(f"  {key}: {conventions[key]!r}")
    for plan in plans:
        out.show_plan(plan)


def index_entry(result: "Result", index: "Index") -> dict:
    """The index row of one embedded page or image, its thumbnail saved beside the index."""
    from .index import save_thumbnail

    meta = result.job.meta
    sha = meta.sha256 or ""
    entry = {"source": meta.source, "path": meta.path, "page": meta.page, "kind": meta.kind, "sha256": sha,
             "thumbnail": None}
    item = result.job.items[0] if result.job.items else None
    if item is not None and item.data:
        entry["thumbnail"] = save_thumbnail(index.folder, f"{sha[:20]}-{meta.page or 0}", item.data)
    return entry
