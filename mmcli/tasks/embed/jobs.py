"""Inputs to embed become jobs: one conversation per image, PDF page or text, grouped into batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmcli.core.job import Embedded, Job
from mmcli.media.item import MediaItem

if TYPE_CHECKING:
    from mmcli.media.document import Page
    from mmcli.families import Family
    from ..common import Context
    from mmcli.presets import Preset

# DSE's model card and vLLM's example send a 56x56 image with text queries: 2x2 patches of 28 px,
# the smallest image a Qwen2-VL processor takes.
PLACEHOLDER_SIDE = 56


def placeholder_item(family: "Family") -> MediaItem:
    """The minimum-size black image that carries a text query for DSE-style models."""
    import io

    from PIL import Image

    side = 2 * family.factor if family.factor else PLACEHOLDER_SIDE
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, "PNG")
    tokens = (side // family.factor) ** 2 if family.factor else None
    return MediaItem(source="(placeholder)", kind="image", mime="image/png", data=buffer.getvalue(),
                     original_width=side, original_height=side, sent_width=side, sent_height=side,
                     visual_tokens=tokens, notes=["placeholder image for a text query"])


def page_jobs(pages: list["Page"], ctx: "Context") -> list[Job]:
    """One job per image or PDF page (the preset adds its words when the request is built)."""
    jobs = []
    for page in pages:
        label = page.source.label if page.page is None else f"{page.source.label} page {page.page}"
        path = str(page.source.path) if page.source.path is not None else None
        jobs.append(ctx.job([page.item], "", label=label, meta=Embedded(
            page.source.label, page.page, "page" if page.page is not None else "image", path=path)))
    return jobs


def text_jobs(texts: list[str], preset: "Preset", ctx: "Context") -> list[Job]:
    """One job per text; DSE-style presets give each a placeholder image."""
    jobs = []
    for text in texts:
        content = [placeholder_item(ctx.target.family)] if preset.placeholder_image else []
        jobs.append(ctx.job(content, "", label=f"text {text[:40]!r}", meta=Embedded(text, None, "text", text=text)))
    return jobs


def batches(jobs: list[Job], size: int) -> list[list[Job]]:
    """The jobs in requests of at most `size` conversations each, in order."""
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def finish_vector(vector: list[float], preset: "Preset") -> list[float]:
    """The vector as the preset wants it: L2-normalised when it says so."""
    if not preset.normalize:
        return vector
    import numpy as np

    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    return (array / norm).tolist() if norm > 0 else vector
