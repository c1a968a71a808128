"""PDF page preparation: mmcli (rendered straight to the pixel budget) against pdf2image at 200 dpi + resize.

    python bench/pdf_prep.py [--runs N] [--pdf PATH] [--pages 1-4]

Both sides start from the same PDF and end with the same thing: base64 JPEG data URLs of the chosen
pages at the model's grid size (Qwen2.5-VL, 1280 visual tokens per page). Prints medians and the
ratio. Target: mmcli at least 3x faster.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGES = 11
LOREM = ("Transformer encoders stack self-attention and feed-forward layers; each layer keeps the model width "
         "and adds a residual path. We train with label smoothing and report results on three benchmarks.")


def make_document(directory: Path) -> Path:
    """An 11-page paper-like PDF: two text columns' worth of lines, coloured figures, photos on some pages."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from tests.support.pdfs import PdfPage, write_pdf

    photo = Image.fromarray(data.astronaut()).resize((1600, 1600), Image.LANCZOS)
    noise = np.random.default_rng(0).normal(0, 4, (1600, 1600, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=90)
    pages = []
    for number in range(1, PAGES + 1):
        lines = [f"Section {number}. Results and discussion"] + [
            f"{i:02d} {LOREM[(i * 7) % 40:][:95]}" for i in range(1, 48)]
        boxes = [(60 + 90 * k, 420, 70, 40 + 25 * ((number + k) % 5), (0.2 + 0.15 * k, 0.4, 0.8 - 0.1 * k))
                 for k in range(5)]
        pages.append(PdfPage(lines=lines, boxes=boxes, photo=buffer.getvalue() if number % 3 == 1 else None))
    return write_pdf(directory / "paper-11-pages.pdf", pages)


def medians(fns: dict, runs: int) -> dict:
    """Median wall time of each function over `runs` rounds (after one warm-up), and its last result.

    The functions take turns within every round, so a busy machine slows them alike.
    """
    results = {name: fn() for name, fn in fns.items()}
    times: dict = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def budget():
    from mmcli.media.resize import PixelBudget

    return PixelBudget(factor=28, min_pixels=4 * 28 * 28, max_pixels=1280 * 28 * 28)


def mmcli_prep(path: Path, pages: list[int]) -> list[str]:
    """mmcli's whole preparation: open and check the PDF, render to the grid, encode as data URLs."""
    from mmcli.media.pdf import open_pdf, render_pages
    from mmcli.media.sources import open_source
    from mmcli.core.wire import data_url

    pdf = open_pdf(open_source(str(path), fetch=None))
    return [data_url(page.data, page.mime) for page in render_pages(pdf, pages, budget())]


def reference_prep(path: Path, pages: list[int]) -> list[str]:
    """The common way: pdf2image at 200 dpi (one call for the range), resize to the grid, JPEG, base64."""
    from pdf2image import convert_from_path

    from mmcli.media.resize import smart_resize

    b = budget()
    urls = []
    for image in convert_from_path(str(path), dpi=200, first_page=pages[0], last_page=pages[-1]):
        # The same target mmcli picks (the page at 300 dpi fitted to the budget), so both send equal sizes.
        height, width = smart_resize(image.height * 3 // 2, image.width * 3 // 2, 28, b.min_pixels, b.max_pixels)
        out = io.BytesIO()
        image.convert("RGB").resize((width, height), 3).save(out, "JPEG", quality=90)
        urls.append("data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode())
    return urls


def render_floor(path: Path, pages: list[int]) -> int:
    """Poppler alone writing the target-size JPEGs, one process, nothing checked: the lower bound."""
    import subprocess

    from mmcli.media.resize import smart_resize

    b = budget()
    height, width = smart_resize(3300, 2550, 28, b.min_pixels, b.max_pixels)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["pdftoppm", "-f", str(pages[0]), "-l", str(pages[-1]), "-scale-to-x", str(width),
                        "-scale-to-y", str(height), "-jpeg", str(path), f"{out}/p"], check=True)
        return len(list(Path(out).iterdir()))


def parse_range(spec: str) -> list[int]:
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pdf", type=Path)
    parser.add_argument("--pages", default="1-4", help="a range, e.g. 1-4 (default) or 1-11")
    args = parser.parse_args()
    pages = parse_range(args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.pdf or make_document(Path(tmp))
        timed = medians({"mmcli": lambda: mmcli_prep(path, pages), "reference": lambda: reference_prep(path, pages),
                         "floor": lambda: render_floor(path, pages)}, args.runs)
        (t_ours, ours), (t_ref, ref), (t_floor, _) = timed["mmcli"], timed["reference"], timed["floor"]
        size = path.stat().st_size
    print(f"pdf: {path.name if args.pdf else 'generated ' + str(PAGES) + '-page paper'} ({size:,} bytes); "
          f"pages {args.pages}; sent at the Qwen2.5-VL grid, 1280 tokens per page")
    print(f"{'method':<40}{'median s':>10}{'payload bytes':>16}")
    for name, seconds, payload in (("mmcli (size= target, JPEG direct)", t_ours, ours),
                                   ("pdf2image 200 dpi + PIL resize + JPEG", t_ref, ref)):
        print(f"{name:<40}{seconds:>10.3f}{sum(map(len, payload)):>16,}")
    print(f"{'render-only floor (one pdftoppm)':<40}{t_floor:>10.3f}")
    print(f"speed-up vs 200 dpi + resize: {t_ref / t_ours:.1f}x (target >= 3x)")


if __name__ == "__main__":
    main()
