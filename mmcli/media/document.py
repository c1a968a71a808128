"""Pages to read: PDFs opened and their pages chosen, then rendered straight to the model's grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import MediaError, UsageError
from ..limits import DEFAULT_MAX_PAGES
from .item import MediaItem

if TYPE_CHECKING:
    from .checked import CheckedInput
    from .image import ImageInput
    from .pdf import PdfInput, RenderedPage
    from .resize import PixelBudget
    from .sources import Source



@dataclass
class Selected:
    """One input and the pages chosen from it (an image is a single page)."""

    checked: "CheckedInput"
    pdf: Optional["PdfInput"]
    pages: list[int]

    @property
    def source(self) -> "Source":
        """Where the input came from."""
        return self.checked.source


@dataclass
class Page:
    """One page ready to send: its prepared item, where it comes from, and its text layer."""

    item: MediaItem
    source: "Source"
    page: Optional[int] = None  # the PDF page number; None for an image input
    text: str = ""
    image: Optional["ImageInput"] = None  # an image input's own pixels
    rendered: Optional["RenderedPage"] = None


def select_pages(checked: list["CheckedInput"], pages_spec: Optional[str], password: Optional[str],
                 max_pages: int = DEFAULT_MAX_PAGES, count_images: bool = True) -> list[Selected]:
    """Open every PDF and choose its pages: every problem is found here, before anything is sent.
    `max_pages` caps the pages when --pages is not given; images count as pages only if `count_images`
    (not where each input is sent on its own, as embed's batches do)."""
    from .pdf import open_pdf, parse_pages

    is_pdf = [c.source.sniffed.kind == "pdf" for c in checked]
    if pages_spec is not None and not any(is_pdf):
        raise UsageError("--pages needs a PDF", "every input is an image", where=f"--pages {pages_spec}",
                         hint="each image is one page: name only the ones to read")
    selected = []
    for item, pdf_input in zip(checked, is_pdf):
        if not pdf_input:
            selected.append(Selected(item, None, [1]))
            continue
        if item.source.url is not None:
            raise MediaError("cannot pass a PDF URL through", "its pages are rendered on this machine",
                             where=item.source.label, hint="drop --pass-url; mmcli downloads the PDF itself")
        pdf = open_pdf(item.source, password)
        try:
            pages = parse_pages(pages_spec, pdf.page_count) if pages_spec is not None else \
                list(range(1, pdf.page_count + 1))
        except UsageError as exc:
            exc.where = f"{pdf.label}: --pages {pages_spec}"
            raise
        selected.append(Selected(item, pdf, pages))
    if pages_spec is None:
        _check_count(selected, max_pages, count_images)
    return selected


def _check_count(selected: list[Selected], max_pages: int, count_images: bool) -> None:
    """UsageError when more pages than `max_pages` were chosen, with a hint that fits what they are."""
    pdf_pages = sum(len(s.pages) for s in selected if s.pdf is not None)
    images = sum(1 for s in selected if s.pdf is None) if count_images else 0
    total = pdf_pages + images
    if total <= max_pages:
        return
    where = selected[0].source.label if len(selected) == 1 else f"{len(selected)} inputs"
    ways = ([f"choose pages with --pages 1-{max_pages}"] if pdf_pages else []) + \
        (["give fewer images (each image is a page), or use --each for one answer per image"] if images else [])
    if not pdf_pages:
        what = f"{total} images"
    else:
        what = f"{total} pages" + (f" ({images} of them images)" if images else "")
    raise UsageError("too many pages", f"{what}, over the limit of {max_pages}", where=where,
                     hint=f"{', or '.join(ways)}; or allow them all with --max-pages {total}")


def render(selected: list[Selected], budget: "PixelBudget", *, lossless: bool, dpi: Optional[int] = None,
           with_text: bool = False, warn: Callable[[str], None] = lambda message: None) -> list[Page]:
    """Every chosen page as a prepared item, in input order; PDF pages rendered straight to their grid size."""
    from .pdf import page_texts, render_pages
    from .prepare import image_item

    pages: list[Page] = []
    for entry in selected:
        label = entry.source.label
        if entry.pdf is None:
            image = entry.checked.image
            pages.append(Page(image_item(entry.source, image, budget, lossless=lossless), entry.source, image=image))
            continue
        rendered = render_pages(entry.pdf, entry.pages, budget, lossless=lossless, dpi=dpi)
        texts = page_texts(entry.pdf, entry.pages) if with_text else {}
        if with_text and not any(texts.values()):
            warn(f"{label} has no text layer (a scan?); sending the page images only")
        for page in rendered:
            item = MediaItem(source=label, kind="page", mime=page.mime, data=page.data,
                             original_width=page.width, original_height=page.height,
                             sent_width=page.width, sent_height=page.height,
                             visual_tokens=budget.tokens(page.height, page.width),
                             notes=[f"{page.width_pt:g}x{page.height_pt:g} pt at {page.dpi:.0f} dpi", *page.notes],
                             details={"page": page.page, "width_pt": page.width_pt, "height_pt": page.height_pt,
                                      "dpi": round(page.dpi, 1)})
            pages.append(Page(item, entry.source, page.page, texts.get(page.page, ""), rendered=page))
            for note in page.notes:  # only --dpi leaves notes: a page capped at the model's maximum
                warn(note)
    return pages
