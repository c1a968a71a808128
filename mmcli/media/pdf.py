"""PDF pages: open and validate with poppler, pick pages, render each straight to its pixel budget.

Pages are rendered by pdftoppm (through pdf2image) directly at the size the model will see,
as JPEG (PNG when lossless), so no full-resolution bitmap is ever decoded or resized here.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Iterator, Optional

from ..errors import MediaError, UsageError
from .jpeg import JPEG_QUALITY
from .resize import AspectRatioError, PixelBudget
from .sources import Source

POPPLER_HINT = ("install poppler: apt-get install poppler-utils (Debian/Ubuntu), dnf install poppler-utils "
                "(Fedora), brew install poppler (macOS), conda install -c conda-forge poppler")
# Without --dpi, pages are sized as if rendered at this resolution, then fitted to the budget:
# finer than this adds nothing a model can read, and small pages stay small.
REFERENCE_DPI = 300
# With --dpi the budget no longer applies; this is the ceiling instead (Qwen's own image maximum).
DPI_MAX_PIXELS = 16384 * 28 * 28
MAX_PAGE_TEXT = 12000
POPPLER_TIMEOUT = 120  # seconds per poppler call, plus PAGE_TIMEOUT per page it renders
PAGE_TIMEOUT = 5
_SIZE_LINE = re.compile(r"^Page\s+(\d+)\s+size:\s+([0-9.eE+-]+) x ([0-9.eE+-]+) pts", re.M)
_ROT_LINE = re.compile(r"^Page\s+(\d+)\s+rot:\s+(-?\d+)", re.M)
_OUTPUT_PAGE = re.compile(r"-(\d+)\.(?:jpg|png)$")


@dataclass
class PdfInput:
    """A PDF that poppler opened: its pages and their sizes in points, as displayed."""

    label: str
    page_count: int
    page_sizes: list[tuple[float, float]]  # (width, height) in points, page rotation applied
    rotations: list[int]
    path: Optional[Path] = None
    data: Optional[bytes] = field(default=None, repr=False)
    password: Optional[str] = field(default=None, repr=False)

    def size_pt(self, page: int) -> tuple[float, float]:
        """(width, height) of 1-based `page` in points."""
        return self.page_sizes[page - 1]


@dataclass
class RenderedPage:
    """One page encoded at exactly the size the model will see."""

    page: int  # 1-based
    width: int
    height: int
    data: bytes = field(repr=False)
    mime: str
    width_pt: float
    height_pt: float
    notes: list[str] = field(default_factory=list)

    @property
    def dpi(self) -> float:
        """The horizontal resolution the page was rendered at."""
        return self.width * 72.0 / self.width_pt


def read_password(name: Optional[str]) -> Optional[str]:
    """The PDF password from environment variable `name` (never from a flag, never shown)."""
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise UsageError("password variable is not set", where=name, hint=f"export {name}=... first")
    return value


def require_poppler(*tools: str) -> None:
    """Fail with install instructions when a poppler tool is not on PATH."""
    for tool in tools or ("pdfinfo", "pdftoppm"):
        if shutil.which(tool) is None:
            raise MediaError("poppler is not installed", f"{tool} was not found on PATH",
                             where=tool, hint=POPPLER_HINT)


@contextlib.contextmanager
def _local_file(label: str, path: Optional[Path], data: Optional[bytes]) -> Iterator[str]:
    """A path poppler can read: the input itself, or a private temporary copy of its bytes."""
    if path is not None:
        yield str(path)
        return
    if data is None:
        raise MediaError("no data", where=label)
    handle = tempfile.NamedTemporaryFile(prefix="mmcli-", suffix=".pdf", delete=False)
    try:
        with handle:
            handle.write(data)
        yield handle.name
    finally:
        os.unlink(handle.name)


def open_pdf(source: Source, password: Optional[str] = None) -> PdfInput:
    """Open a PDF with poppler and check it: readable, not locked, at least one page, sane page sizes."""
    from pdf2image import pdfinfo_from_path
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFPopplerTimeoutError

    require_poppler()
    data = None if source.path is not None else source.read()
    with _local_file(source.label, source.path, data) as local:
        try:
            # Every page's size comes in the same call: -l past the end is clamped by pdfinfo.
            info = pdfinfo_from_path(local, userpw=password, ownerpw=password, first_page=1,
                                     last_page=2**31 - 1, timeout=POPPLER_TIMEOUT)
        except PDFInfoNotInstalledError:
            raise MediaError("poppler is not installed", "pdfinfo could not be run", where=source.label,
                             hint=POPPLER_HINT) from None
        except PDFPopplerTimeoutError:
            raise MediaError("cannot read PDF", f"poppler took over {POPPLER_TIMEOUT} s to read it",
                             where=source.label) from None
        except PDFPageCountError as exc:
            raise _open_error(source.label, str(exc), password) from None
    sizes, rotations = _page_geometry(info, source.label)
    return PdfInput(label=source.label, page_count=len(sizes), page_sizes=sizes, rotations=rotations,
                    path=source.path, data=data, password=password)


def _open_error(label: str, stderr: str, password: Optional[str]) -> MediaError:
    text = stderr.replace(password, "***") if password else stderr
    if "Incorrect password" in text:
        if password is None:
            return MediaError("PDF is encrypted", "it needs a password to open", where=label,
                              hint="put the password in an environment variable and name it: "
                                   "export PDF_PASSWORD=...; then add --password-env PDF_PASSWORD")
        return MediaError("PDF is encrypted", "the password given with --password-env is not accepted",
                          where=label, hint="check the variable named by --password-env")
    if "Invalid page count 0" in text or "Wrong page range" in text:
        return MediaError("PDF has no pages", where=label)
    reasons = [line.split(":", 1)[-1].strip() for line in text.splitlines() if "Error" in line]
    why = reasons[0] if reasons else "poppler cannot read it"
    return MediaError("cannot read PDF", why, where=label, hint="the file may be damaged or not really a PDF")


def _page_geometry(info: dict, label: str) -> tuple[list[tuple[float, float]], list[int]]:
    text = "\n".join(f"{key}: {value}" for key, value in info.items())
    count = int(info.get("Pages", 0) or 0)
    if count < 1:
        raise MediaError("PDF has no pages", where=label)
    sizes = {int(n): (float(w), float(h)) for n, w, h in _SIZE_LINE.findall(text)}
    rotations = {int(n): int(r) % 360 for n, r in _ROT_LINE.findall(text)}
    if len(sizes) != count:
        raise MediaError("cannot read PDF", f"poppler reported {count} pages but the sizes of {len(sizes)}",
                         where=label, hint="the file may be damaged")
    displayed, rots = [], []
    for page in range(1, count + 1):
        width, height = sizes[page]
        rot = rotations.get(page, 0)
        if not (math.isfinite(width) and math.isfinite(height)) or width < 1 or height < 1:
            raise MediaError("PDF page has an unusable size", f"page {page} is {width:g} x {height:g} pt",
                             where=label)
        displayed.append((height, width) if rot in (90, 270) else (width, height))
        rots.append(rot)
    return displayed, rots


def parse_pages(spec: str, page_count: int) -> list[int]:
    """1-based page numbers from '1-4,7', '10-' or '3', in order, without repeats."""
    pages: set[int] = set()
    for raw in spec.split(","):
        part = raw.strip()
        match = re.fullmatch(r"(\d+)\s*(?:(-)\s*(\d*))?", part)
        if not match:
            raise UsageError("invalid --pages", f"{part!r} is not a page or range like 3, 1-4 or 10-",
                             where=spec, hint="pages are 1-based: --pages 1-4,7")
        first = int(match.group(1))
        last = (int(match.group(3)) if match.group(3) else page_count) if match.group(2) else first
        if first < 1:
            raise UsageError("invalid --pages", "pages are numbered from 1", where=spec)
        # Past the end before backwards: `10-` on a 6-page document starts past its end.
        beyond = first if first > page_count else last
        if beyond > page_count:
            raise UsageError("invalid --pages", f"page {beyond} is past the end: the document has "
                             f"{page_count} page{'s' if page_count != 1 else ''}", where=spec,
                             hint=f"pick pages between 1 and {page_count}")
        if last < first:
            raise UsageError("invalid --pages", f"the range {part} runs backwards", where=spec)
        pages.update(range(first, last + 1))
    return sorted(pages)


def format_pages(pages: list[int]) -> str:
    """A compact page list: [1, 2, 3, 7] -> '1-3, 7'."""
    runs: list[list[int]] = []
    for page in pages:
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def page_target(pdf: PdfInput, page: int, budget: PixelBudget, dpi: Optional[int] = None
                ) -> tuple[int, int, list[str]]:
    """(width, height) page `page` is rendered at, and notes; pure arithmetic, nothing rendered."""
    width_pt, height_pt = pdf.size_pt(page)
    notes = []
    scale = (dpi or REFERENCE_DPI) / 72.0
    want_h, want_w = max(1, round(height_pt * scale)), max(1, round(width_pt * scale))
    if dpi:
        budget = PixelBudget(factor=budget.factor, min_pixels=min(budget.min_pixels, DPI_MAX_PIXELS),
                             max_pixels=DPI_MAX_PIXELS)
    try:
        height, width = budget.target_size(want_h, want_w)
    except AspectRatioError as exc:
        raise MediaError("PDF page too thin for the model's grid", f"page {page}: {exc}", where=pdf.label,
                         hint="leave this page out with --pages") from None
    if dpi and width * height < want_w * want_h * 0.9:
        notes.append(f"page {page} at {dpi} dpi would be {want_w}x{want_h} px; capped at {width}x{height}")
    return width, height, notes


def render_pages(pdf: PdfInput, pages: list[int], budget: PixelBudget, *, lossless: bool = False,
                 dpi: Optional[int] = None) -> list[RenderedPage]:
    """Render `pages` (1-based) straight to their target sizes; checked, in the order given."""
    from pdf2image import convert_from_path
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFPopplerTimeoutError

    require_poppler()
    for page in pages:
        if not 1 <= page <= pdf.page_count:
            raise UsageError("invalid page", f"page {page} is past the end: the document has {pdf.page_count}",
                             where=pdf.label)
    targets = {page: page_target(pdf, page, budget, dpi) for page in pages}
    runs = _runs(pdf, sorted(set(pages)), targets)
    ext = "png" if lossless else "jpeg"
    done: dict[int, RenderedPage] = {}
    with _local_file(pdf.label, pdf.path, pdf.data) as local, tempfile.TemporaryDirectory(prefix="mmcli-") as out:
        threads = max(1, min(4, os.cpu_count() or 1))

        def render(run: list[int], thread_count: int, folder: str) -> list[str]:
            width, height, _ = targets[run[0]]
            # pdftoppm scales the unrotated page, then turns it: quarter turns swap the sides asked for.
            size = (height, width) if pdf.rotations[run[0] - 1] in (90, 270) else (width, height)
            return convert_from_path(local, first_page=run[0], last_page=run[-1], fmt=ext, size=size,
                                     thread_count=thread_count, userpw=pdf.password, ownerpw=pdf.password,
                                     use_cropbox=True, output_folder=folder, paths_only=True,
                                     jpegopt=None if lossless else {"quality": JPEG_QUALITY},
                                     timeout=POPPLER_TIMEOUT + PAGE_TIMEOUT * len(run))

        try:
            paths = _render_runs(runs, threads, out, render)
        except (PDFInfoNotInstalledError, FileNotFoundError):
            raise MediaError("poppler is not installed", "pdftoppm could not be run", where=pdf.label,
                             hint=POPPLER_HINT) from None
        except PDFPopplerTimeoutError:
            raise MediaError("cannot render PDF", "poppler took too long", where=pdf.label,
                             hint="ask about fewer pages at a time with --pages") from None
        except PDFPageCountError as exc:
            raise _open_error(pdf.label, str(exc), pdf.password) from None
        for path in paths:
            match = _OUTPUT_PAGE.search(path)
            page = int(match.group(1)) if match else 0
            if page not in targets:
                continue
            width, height, notes = targets[page]
            data = check_rendered(Path(path).read_bytes(), page, width, height, pdf.label, lossless)
            done[page] = RenderedPage(page, width, height, data, "image/png" if lossless else "image/jpeg",
                                      *pdf.size_pt(page), notes=notes)
    missing = [page for page in pages if page not in done]
    if missing:
        raise MediaError("cannot render PDF", f"poppler produced no image for page {missing[0]}",
                         where=pdf.label, hint="the page may be damaged; leave it out with --pages")
    return [done[page] for page in pages]


def _runs(pdf: PdfInput, pages: list[int], targets: dict) -> list[list[int]]:
    """Consecutive pages rendered at one size and rotation: one pdftoppm range each."""
    def key(page: int) -> tuple:
        return targets[page][:2], pdf.rotations[page - 1]

    runs: list[list[int]] = []
    for page in pages:
        previous = runs[-1][-1] if runs else None
        if previous == page - 1 and key(previous) == key(page):
            runs[-1].append(page)
        else:
            runs.append([page])
    return runs


def _render_runs(runs: list[list[int]], threads: int, out: str, render) -> list[str]:
    if len(runs) == 1:
        return render(runs[0], min(threads, len(runs[0])), out)
    from concurrent.futures import ThreadPoolExecutor

    # Several ranges (mixed page sizes, or gaps): one poppler process per range, `threads` at a time.
    folders = [tempfile.mkdtemp(dir=out) for _ in runs]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda args: render(args[0], 1, args[1]), zip(runs, folders)))
    return [path for result in results for path in result]


def check_rendered(data: bytes, page: int, width: int, height: int, label: str, lossless: bool = False) -> bytes:
    """The rendered image if it has the size asked for; a 1x1 or broken render is an error."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = Image.open(BytesIO(data)).size
    except (UnidentifiedImageError, OSError, ValueError):
        raise MediaError("cannot render PDF page", f"poppler wrote no readable image for page {page}",
                         where=label, hint="the page may be damaged; leave it out with --pages") from None
    if size == (width, height):
        return data
    if size[0] <= 1 or size[1] <= 1:
        # Poppler's answer to a bitmap it cannot allocate: a blank 1x1 image and exit status 0.
        raise MediaError("PDF page too large to render", f"poppler returned a {size[0]}x{size[1]} image for "
                         f"page {page} instead of {width}x{height}", where=label,
                         hint="render at a lower resolution (drop --dpi or lower it), or skip it with --pages")
    if abs(size[0] - width) > 2 or abs(size[1] - height) > 2:
        raise MediaError("cannot render PDF page", f"poppler returned {size[0]}x{size[1]} for page {page} "
                         f"instead of {width}x{height}", where=label)
    return _trim_to_size(data, width, height, lossless, label)


def _trim_to_size(data: bytes, width: int, height: int, lossless: bool, label: str) -> bytes:
    """Rounding in poppler can leave a pixel over or under: resize that last bit exactly."""
    import cv2
    import numpy as np

    from .image import encode_bgr, resize_exact

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError("cannot render PDF page", "poppler's image could not be decoded", where=label)
    return encode_bgr(resize_exact(bgr, height, width), lossless, JPEG_QUALITY, label)


def page_texts(pdf: PdfInput, pages: list[int]) -> dict[int, str]:
    """Each page's text layer (pdftotext); '' for pages without one, such as scans."""
    require_poppler("pdftotext")
    texts: dict[int, str] = {}
    with _local_file(pdf.label, pdf.path, pdf.data) as local:
        for run in _runs(pdf, sorted(set(pages)), {p: (0, 0, []) for p in pages}):
            texts.update(_text_range(local, pdf, run[0], run[-1]))
    return {page: texts.get(page, "") for page in pages}


def _text_range(local: str, pdf: PdfInput, first: int, last: int) -> dict[int, str]:
    argv = ["pdftotext", "-f", str(first), "-l", str(last), "-enc", "UTF-8"]
    if pdf.password is not None:
        argv += ["-upw", pdf.password, "-opw", pdf.password]
    try:
        proc = subprocess.run(argv + [local, "-"], capture_output=True, timeout=POPPLER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError("cannot read the text layer", f"pdftotext took over {POPPLER_TIMEOUT} s",
                         where=pdf.label, hint="leave out --with-text") from None
    if proc.returncode != 0:
        raise _open_error(pdf.label, proc.stderr.decode("utf-8", "replace"), pdf.password)
    # pdftotext ends every page with a form feed.
    chunks = proc.stdout.decode("utf-8", "replace").split("\f")
    out = {}
    for offset, page in enumerate(range(first, last + 1)):
        text = chunks[offset].strip() if offset < len(chunks) else ""
        if len(text) > MAX_PAGE_TEXT:
            text = text[:MAX_PAGE_TEXT] + " [...]"
        out[page] = text
    return out
