"""mmcli.media.pdf with real poppler: opening, page choice, rendering straight to the grid, text layers."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from mmcli.errors import MediaError, UsageError
from mmcli.media.pdf import (check_rendered, format_pages, open_pdf, page_target, page_texts, parse_pages,
                             render_pages)
from mmcli.media.resize import PixelBudget, smart_resize
from mmcli.media.sources import open_source
from tests.support import pdfs

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")

QWEN = PixelBudget(factor=28, min_pixels=4 * 28 * 28, max_pixels=1280 * 28 * 28)
SMALL = PixelBudget(factor=28, min_pixels=4 * 28 * 28, max_pixels=256 * 28 * 28)


def opened(path, password=None):
    return open_pdf(open_source(str(path), fetch=None), password)


def test_open_reports_pages_and_sizes_with_rotation(tmp_path):
    path = pdfs.write_pdf(tmp_path / "mixed.pdf", [
        pdfs.PdfPage(lines=["portrait"]), pdfs.PdfPage(rotate=90, lines=["turned"]),
        pdfs.PdfPage(842, 595, lines=["A4 landscape"])])
    pdf = opened(path)
    assert pdf.page_count == 3
    assert pdf.page_sizes == [(612, 792), (792, 612), (842, 595)]
    assert pdf.rotations == [0, 90, 0]


def test_pages_from_stdin_bytes_are_read_through_a_private_copy(tmp_path, monkeypatch):
    import tempfile

    data = pdfs.text_pdf(tmp_path / "doc.pdf", 2).read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = open_source("-", fetch=None, stdin=io.BytesIO(data))
    pdf = open_pdf(source)
    assert pdf.path is None and pdf.page_count == 2
    [page] = render_pages(pdf, [2], SMALL)
    assert page.page == 2 and page.data[:2] == b"\xff\xd8"
    assert "MARKER-1" in page_texts(pdf, [1])[1]
    assert list(scratch.iterdir()) == []  # every temporary copy is gone


@pytest.mark.parametrize("spec,expected", [
    ("3", [3]), ("1-4,7", [1, 2, 3, 4, 7]), (" 7 , 1-2 ", [1, 2, 7]), ("8-", [8, 9, 10]),
    ("2-2,2", [2]), ("10", [10]),
])
def test_parse_pages(spec, expected):
    assert parse_pages(spec, 10) == expected


@pytest.mark.parametrize("spec,fragment", [
    ("11", "past the end"), ("4-12", "past the end"), ("0", "from 1"), ("5-2", "backwards"),
    ("a", "not a page"), ("1,,2", "not a page"), ("-3", "not a page"),
])
def test_parse_pages_refuses(spec, fragment):
    with pytest.raises(UsageError) as caught:
        parse_pages(spec, 10)
    assert fragment in caught.value.message()


def test_format_pages():
    assert format_pages([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert format_pages([5]) == "5"


def test_rendered_pages_are_exactly_the_planned_grid_size(tmp_path):
    path = pdfs.write_pdf(tmp_path / "sizes.pdf", [
        pdfs.PdfPage(lines=["letter"]), pdfs.PdfPage(842, 595, lines=["A4 landscape"]),
        pdfs.PdfPage(rotate=270, lines=["turned"]), pdfs.PdfPage(200, 120, lines=["small card"])])
    pdf = opened(path)
    rendered = render_pages(pdf, [4, 1, 2, 3], QWEN)
    assert [r.page for r in rendered] == [4, 1, 2, 3]  # the order asked for
    for r in rendered:
        image = Image.open(io.BytesIO(r.data))
        assert image.format == "JPEG" and image.size == (r.width, r.height)
        assert r.width % 28 == 0 and r.height % 28 == 0
        assert r.width * r.height <= QWEN.max_pixels
        width_pt, height_pt = pdf.size_pt(r.page)
        assert (r.width_pt, r.height_pt) == (width_pt, height_pt)
        assert abs(r.width / r.height - width_pt / height_pt) < 0.05  # aspect kept, turned pages upright
    letter = rendered[1]
    # Budget-fitted from the page at 300 dpi: the same arithmetic the model's processor uses.
    assert (letter.height, letter.width) == smart_resize(3300, 2550, 28, QWEN.min_pixels, QWEN.max_pixels)
    card = rendered[0]
    assert card.dpi > 250  # a small page is not blown up past the reference resolution
    assert rendered[3].width > rendered[3].height  # /Rotate 270 portrait shows as landscape


def test_rendered_content_is_the_page(tmp_path):
    path = pdfs.write_pdf(tmp_path / "red.pdf", [pdfs.PdfPage(boxes=[(0, 0, 612, 396, (1, 0, 0))])])
    [page] = render_pages(opened(path), [1], SMALL, lossless=True)
    image = Image.open(io.BytesIO(page.data)).convert("RGB")
    assert page.mime == "image/png" and page.data.startswith(b"\x89PNG")
    assert image.getpixel((page.width // 2, page.height * 3 // 4)) == (255, 0, 0)  # bottom half red
    assert image.getpixel((page.width // 2, page.height // 4)) == (255, 255, 255)  # top half white


def test_dpi_overrides_the_budget_and_is_capped(tmp_path):
    pdf = opened(pdfs.write_pdf(tmp_path / "p.pdf", [pdfs.PdfPage(), pdfs.PdfPage(14400, 14400)]))
    [page] = render_pages(pdf, [1], SMALL, dpi=144)
    assert (page.height, page.width) == smart_resize(1584, 1224, 28, SMALL.min_pixels, 16384 * 28 * 28)
    assert page.width * page.height > SMALL.max_pixels and abs(page.dpi - 144) < 3
    width, height, notes = page_target(pdf, 2, SMALL, dpi=200)  # 40000 px square: far too big
    assert width * height <= 16384 * 28 * 28 and "capped" in notes[0]


def test_poppler_1x1_answer_is_detected(tmp_path):
    from pdf2image import convert_from_path

    huge = pdfs.write_pdf(tmp_path / "poster.pdf", [pdfs.PdfPage(14400, 14400, lines=["poster"])])
    # What the common approach (200 dpi, then resize) gets from poppler for this page.
    [image] = convert_from_path(str(huge), dpi=200, fmt="jpeg")
    assert image.size == (1, 1)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    with pytest.raises(MediaError) as caught:
        check_rendered(buffer.getvalue(), 1, 1008, 1008, "poster.pdf")
    assert "too large" in caught.value.message() and "1x1" in caught.value.message()


def test_off_by_one_render_is_fitted_and_garbage_refused():
    image = Image.new("RGB", (281, 365), "white")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    fixed = check_rendered(buffer.getvalue(), 1, 280, 364, "x.pdf")
    assert Image.open(io.BytesIO(fixed)).size == (280, 364)
    with pytest.raises(MediaError):
        check_rendered(b"not an image", 1, 280, 364, "x.pdf")


def test_text_layer_per_page_and_none_for_scans(tmp_path):
    pdf = opened(pdfs.text_pdf(tmp_path / "t.pdf", 4))
    texts = page_texts(pdf, [4, 2, 3])
    assert list(texts) == [4, 2, 3]
    assert "MARKER-2" in texts[2] and "MARKER-4" in texts[4] and "MARKER-3" not in texts[2]
    scans = opened(pdfs.scanned_pdf(tmp_path / "scan.pdf", 2))
    assert page_texts(scans, [1, 2]) == {1: "", 2: ""}


def test_encrypted_pdf_needs_the_password(tmp_path):
    path = pdfs.encrypted_pdf(tmp_path / "locked.pdf", "s3cret-pw")
    with pytest.raises(MediaError) as caught:
        opened(path)
    assert "encrypted" in caught.value.message() and "--password-env" in caught.value.hint
    with pytest.raises(MediaError) as wrong:
        opened(path, "guess")
    assert "not accepted" in wrong.value.message() and "guess" not in wrong.value.message()
    pdf = opened(path, "s3cret-pw")
    assert pdf.page_count == 2
    assert "s3cret-pw" not in repr(pdf)
    [page] = render_pages(pdf, [2], SMALL)
    assert Image.open(io.BytesIO(page.data)).size == (page.width, page.height)
    assert "MARKER-2" in page_texts(pdf, [2])[2]


@pytest.mark.parametrize("make,fragment", [
    (pdfs.corrupt_pdf, "cannot read PDF"), (pdfs.zero_page_pdf, "no pages")])
def test_broken_pdfs(tmp_path, make, fragment):
    with pytest.raises(MediaError) as caught:
        opened(make(tmp_path / "bad.pdf"))
    assert fragment in caught.value.message() and "bad.pdf" in caught.value.message()


def test_missing_poppler_says_how_to_install(tmp_path, monkeypatch):
    path = pdfs.text_pdf(tmp_path / "t.pdf", 1)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MediaError) as caught:
        opened(path)
    assert "poppler is not installed" in caught.value.message() and "poppler-utils" in caught.value.hint
