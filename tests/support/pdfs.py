"""PDF fixtures written in the tests: text layers, vector figures, photos, odd page boxes, bad files.

`write_pdf` produces a small but standard PDF (Helvetica text, filled shapes, optional JPEG
photos, per-page MediaBox and /Rotate) that poppler renders and `pdftotext` reads back.
Encrypted files are made with pypdf; scanned documents (images only, no text layer) with Pillow.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

LETTER = (612.0, 792.0)


@dataclass
class PdfPage:
    """One page: size in points, rotation, text lines, coloured boxes, an optional photo."""

    width: float = LETTER[0]
    height: float = LETTER[1]
    rotate: int = 0
    lines: list[str] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float, tuple[float, float, float]]] = field(default_factory=list)
    photo: Optional[bytes] = None  # baseline JPEG bytes, drawn in the lower half of the page


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(page: PdfPage, photo_name: Optional[str]) -> bytes:
    ops = []
    for x, y, w, h, (r, g, b) in page.boxes:
        ops.append(f"{r:.3f} {g:.3f} {b:.3f} rg {x:.1f} {y:.1f} {w:.1f} {h:.1f} re f")
    if photo_name:
        w, h = page.width * 0.6, page.height * 0.3
        ops.append(f"q {w:.1f} 0 0 {h:.1f} {page.width * 0.2:.1f} {page.height * 0.08:.1f} cm /{photo_name} Do Q")
    if page.lines:
        size = max(6.0, min(14.0, page.height / 50))
        ops.append(f"0 0 0 rg BT /F1 {size:.1f} Tf {size * 1.3:.1f} TL {page.width * 0.08:.1f} "
                   f"{page.height - 3 * size:.1f} Td")
        ops.extend(f"({_escape(line)}) Tj T*" for line in page.lines)
        ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def pdf_bytes(pages: list[PdfPage]) -> bytes:
    """A complete PDF document with these pages."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree exists
    tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for page in pages:
        xobjects = b""
        if page.photo:
            width, height = _jpeg_size(page.photo)
            image = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                        b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n%s\nendstream"
                        % (width, height, len(page.photo), page.photo))
            xobjects = b" /XObject << /Im1 %d 0 R >>" % image
        stream = _content(page, "Im1" if page.photo else None)
        contents = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Rotate %d /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R >>%s >> >>"
                        % (tree, _num(page.width), _num(page.height), page.rotate, contents, font, xobjects)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return _assemble(objects, catalog)


def _num(value: float) -> bytes:
    return (f"{value:.3f}".rstrip("0").rstrip(".")).encode()


def _assemble(objects: list[bytes], root: int) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def write_pdf(path: Path, pages: list[PdfPage]) -> Path:
    """Write a PDF with these pages to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(pages))
    return path


def page_text(number: int) -> list[str]:
    """The text lines test documents put on page `number` (its marker is 'MARKER-<number>')."""
    return [f"Page {number} of the test document", f"MARKER-{number}",
            "The quick brown fox jumps over the lazy dog."]


def text_pdf(path: Path, count: int, size: tuple[float, float] = LETTER) -> Path:
    """A `count`-page document with a text layer and a coloured box per page."""
    colours = [(0.9, 0.1, 0.1), (0.1, 0.6, 0.1), (0.1, 0.2, 0.9)]
    pages = [PdfPage(size[0], size[1], lines=page_text(n),
                     boxes=[(size[0] * 0.1, size[1] * 0.4, size[0] * 0.5, size[1] * 0.2, colours[n % 3])])
             for n in range(1, count + 1)]
    return write_pdf(path, pages)


def scanned_pdf(path: Path, count: int, size_px: tuple[int, int] = (850, 1100)) -> Path:
    """A `count`-page document of images only (as a scanner writes it): no text layer."""
    from PIL import Image, ImageDraw

    images = []
    for n in range(1, count + 1):
        image = Image.new("RGB", size_px, "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle((80, 80, size_px[0] - 80, 240), fill=(40 * n % 255, 90, 160))
        draw.text((100, 300), f"scanned page {n}", fill="black")
        images.append(image)
    path = Path(path)
    images[0].save(path, "PDF", resolution=100.0, save_all=True, append_images=images[1:])
    return path


def encrypted_pdf(path: Path, password: str, count: int = 2) -> Path:
    """A text PDF that needs `password` to open (RC4, so no extra crypto library is needed)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_bytes([PdfPage(lines=page_text(n)) for n in range(1, count + 1)]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    path = Path(path)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def corrupt_pdf(path: Path) -> Path:
    """A file that starts like a PDF but breaks off before any object can be read."""
    whole = pdf_bytes([PdfPage(lines=page_text(1))])
    path = Path(path)
    path.write_bytes(whole[:120])
    return path


def zero_page_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    path = Path(path)
    path.write_bytes(_assemble(objects, 1))
    return path
