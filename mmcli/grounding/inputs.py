"""What detect sends: one job per image, or per chosen PDF page, each with its own plan and file names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import MediaError, UsageError
from .outputs import OutputNames, names_for

if TYPE_CHECKING:
    from ..config import MediaOptions
    from ..media.image import ImageInput
    from ..media.pdf import PdfInput, RenderedPage
    from ..media.resize import PixelBudget
    from ..media.sources import Source
    from ..pipeline import CheckedInput
    from ..plan import PlanItem
    from ..render import Output

# One request per page: without --pages, more than this many pages is more likely a mistake than a plan.
MAX_PAGES = 50


@dataclass
class Entry:
    """One input after its checks: an image, or a PDF and the pages chosen from it."""

    checked: "CheckedInput"
    pdf: Optional["PdfInput"] = None
    pages: list[int] = field(default_factory=list)

    @property
    def source(self) -> "Source":
        """Where the input came from."""
        return self.checked.source

    def names(self, output_dir: Optional[Path]) -> list[OutputNames]:
        """Output names for each image this input yields."""
        source = self.source
        if self.pdf is None:
            return [names_for(source.label, source.path, output_dir)]
        return [names_for(source.label, source.path, output_dir, page) for page in self.pages]


@dataclass
class Job:
    """One image to ground: an image input, or one rendered page of a PDF."""

    source: "Source"
    image: "ImageInput"  # the pixels boxes are mapped to and drawn on
    names: OutputNames
    page: Optional[int] = None
    rendered: Optional["RenderedPage"] = None

    @property
    def label(self) -> str:
        """The input as the user named it."""
        return self.source.label

    @property
    def path(self) -> Optional[Path]:
        """The input's local path, if it has one."""
        return self.source.path

    @property
    def display_name(self) -> str:
        """How this image is named in messages."""
        return self.label if self.page is None else f"{self.label} page {self.page}"

    @property
    def page_size_pt(self) -> Optional[tuple[float, float]]:
        """A PDF page's size in points (as displayed)."""
        return None if self.rendered is None else (self.rendered.width_pt, self.rendered.height_pt)


def select(checked: list["CheckedInput"], pages_spec: Optional[str], password: Optional[str]) -> list[Entry]:
    """Open every PDF and choose its pages: every problem is found here, before anything is sent."""
    from ..media.pdf import open_pdf, parse_pages

    is_pdf = [c.source.sniffed.kind == "pdf" for c in checked]
    if pages_spec and not any(is_pdf):
        raise UsageError("--pages needs a PDF", "every input is an image", where=f"--pages {pages_spec}",
                         hint="each image is searched whole; name only the ones to search")
    entries = []
    for item, pdf_input in zip(checked, is_pdf):
        if not pdf_input:
            entries.append(Entry(item))
            continue
        pdf = open_pdf(item.source, password)
        try:
            pages = parse_pages(pages_spec, pdf.page_count) if pages_spec else list(range(1, pdf.page_count + 1))
        except UsageError as exc:
            exc.where = f"{pdf.label}: --pages {pages_spec}"
            raise
        entries.append(Entry(item, pdf, pages))
    total = sum(len(e.pages) for e in entries if e.pdf is not None)
    if not pages_spec and total > MAX_PAGES:
        raise UsageError("too many pages", f"{total} PDF pages, one request each; the limit without --pages "
                         f"is {MAX_PAGES}", where=entries[0].source.label if len(entries) == 1 else "inputs",
                         hint=f"choose the pages to search with --pages, e.g. --pages 1-{MAX_PAGES}")
    return entries


def build_jobs(entries: list[Entry], budget: "PixelBudget", media: "MediaOptions", output_dir: Optional[Path],
               out: "Output") -> list[Job]:
    """Jobs in input order; PDF pages are rendered here, straight to the size the model will see."""
    from ..media.image import open_image
    from ..media.pdf import render_pages

    jobs = []
    for entry in entries:
        names = entry.names(output_dir)
        if entry.pdf is None:
            jobs.append(Job(entry.source, entry.checked.image, names[0]))
            continue
        with out.spinner(f"rendering {len(entry.pages)} page(s) of {entry.source.label}"):
            rendered = render_pages(entry.pdf, entry.pages, budget, lossless=media.lossless)
        for page, page_names in zip(rendered, names):
            image = open_image(page.data, f"{entry.source.label} page {page.page}")
            if (image.width, image.height) != (page.width, page.height):
                raise MediaError("cannot render PDF page", f"page {page.page} came out {image.width}x"
                                 f"{image.height}, not {page.width}x{page.height}", where=entry.source.label)
            jobs.append(Job(entry.source, image, page_names, page.page, page))
    return jobs


def plan_job(job: Job, budget: "PixelBudget", media: "MediaOptions") -> tuple["PlanItem", dict]:
    """The plan item and content part for one job; rendered pages are sent as rendered."""
    from .. import pipeline
    from ..messages import data_url, image_part
    from ..plan import PlanItem

    if job.rendered is None:
        return pipeline.plan_image(pipeline.CheckedInput(job.source, job.image), budget, media)
    page = job.rendered
    item = PlanItem(source=job.label, kind="page", mime=page.mime, original_width=page.width,
                    original_height=page.height, sent_width=page.width, sent_height=page.height,
                    visual_tokens=budget.tokens(page.height, page.width), bytes=len(page.data),
                    notes=[f"{page.width_pt:g}x{page.height_pt:g} pt at {page.dpi:.0f} dpi", *page.notes],
                    details={"page": page.page, "width_pt": page.width_pt, "height_pt": page.height_pt})
    return item, image_part(data_url(page.data, page.mime))
