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
    from mmcli.presets import Preset


def count_jobs(selected: list["Selected"], texts: list[str]) -> int:
    """How many vectors the run makes."""
    return sum(len(s.pages) for s in selected) + len(texts)


def job_stream(selected: list["Selected"], texts: list[str], preset: "Preset", ctx: "Context",
               hashes: Optional[dict] = None) -> Iterator["Job"]:
    """Jobs in input order; each input is rendered only when its turn comes (its media let go once sent: see
    task.send), so only the batch in flight holds rendered media."""
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


def thumbnail_name(result: "Result") -> str:
    """The name of an embedded page's thumbnail: its file's contents and the page (the same picture, the same name)."""
    meta = result.job.meta
    return f"{(meta.sha256 or '')[:20]}-{meta.page or 0}"


def keep_thumbnail(result: "Result", thumbnails: dict[str, bytes]) -> None:
    """The thumbnail of a sent page made now, while its image is at hand (the image is let go after sending)."""
    from .index import thumbnail_jpeg

    item = result.job.items[0] if result.job.items else None
    jpeg = thumbnail_jpeg(item.data) if item is not None and item.data else None
    if jpeg is not None:
        thumbnails[thumbnail_name(result)] = jpeg


def index_entry(result: "Result", thumbnails: dict[str, bytes]) -> dict:
    """The index row of one embedded page or image; its thumbnail, when one was made, is written with the index."""
    from .index import thumbnail_path

    meta = result.job.meta
    name = thumbnail_name(result)
    return {"source": meta.source, "path": meta.path, "page": meta.page, "kind": meta.kind, "sha256": meta.sha256 or "",
            "thumbnail": thumbnail_path(name) if name in thumbnails else None}
