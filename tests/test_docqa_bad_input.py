"""`mmcli docqa` refuses bad documents with one clear line, the right exit code, and sends nothing."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from tests.conftest import assert_clean_error
from tests.support import media, pdfs

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")

PASSWORD = "Tr0ub4dor-pw"


def docqa(mmcli, server, *args, env=None):
    return mmcli("docqa", *args, "--base-url", server.base_url, env=env)


def refused(run, server, code, *fragments):
    assert_clean_error(run, code, *fragments)
    assert server.requests == []  # not even the model lookup
    assert PASSWORD not in run.output


def test_missing_poppler_says_how_to_install_it(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 1)
    empty = tmp_path / "no-tools"
    empty.mkdir()
    run = docqa(mmcli, server, doc, "q", env={"PATH": str(empty)})
    refused(run, server, 3, "poppler is not installed")
    assert "apt-get install poppler-utils" in run.stderr and "brew install poppler" in run.stderr


def test_encrypted_pdf_without_a_password(mmcli, server, tmp_path):
    doc = pdfs.encrypted_pdf(tmp_path / "locked.pdf", PASSWORD)
    run = docqa(mmcli, server, doc, "q")
    refused(run, server, 3, "encrypted", "locked.pdf")
    assert "--password-env" in run.stderr


def test_encrypted_pdf_with_the_wrong_password_never_shows_it(mmcli, server, tmp_path):
    doc = pdfs.encrypted_pdf(tmp_path / "locked.pdf", "the-right-one")
    run = docqa(mmcli, server, doc, "q", "--password-env", "DOC_PW", "--debug", env={"DOC_PW": PASSWORD})
    assert run.code == 3 and "not accepted" in run.stderr
    assert server.requests == [] and PASSWORD not in run.output


def test_password_variable_not_set(mmcli, server, tmp_path):
    doc = pdfs.encrypted_pdf(tmp_path / "locked.pdf", PASSWORD)
    refused(docqa(mmcli, server, doc, "q", "--password-env", "NOT_SET_ANYWHERE"), server, 2, "NOT_SET_ANYWHERE")


@pytest.mark.parametrize("make,fragment", [(pdfs.corrupt_pdf, "cannot read PDF"), (pdfs.zero_page_pdf, "no pages")])
def test_corrupt_and_empty_pdfs(mmcli, server, tmp_path, make, fragment):
    bad = make(tmp_path / "bad.pdf")
    refused(docqa(mmcli, server, bad, "q"), server, 3, fragment, "bad.pdf")


def test_one_bad_pdf_among_good_inputs_stops_everything(mmcli, server, tmp_path):
    good = pdfs.text_pdf(tmp_path / "good.pdf", 2)
    bad = pdfs.corrupt_pdf(tmp_path / "bad.pdf")
    refused(docqa(mmcli, server, good, media.make_small_png(tmp_path), bad, "q"), server, 3, "bad.pdf")


@pytest.mark.parametrize("spec,code,fragment", [
    ("12", 2, "past the end"), ("3-40", 2, "past the end"), ("two", 2, "not a page"), ("0", 2, "from 1"),
])
def test_bad_page_choices(mmcli, server, tmp_path, spec, code, fragment):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 10)
    run = docqa(mmcli, server, doc, "q", "--pages", spec)
    refused(run, server, code, fragment, "doc.pdf")


def test_many_images_get_a_hint_that_fits_images(mmcli, server, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    scans = [folder / f"{n}.png" for n in range(4)]
    for scan in scans:
        Image.new("RGB", (32, 32), "white").save(scan)
    run = docqa(mmcli, server, *scans, "q", "--max-pages", "3")
    refused(run, server, 2, "too many pages", "4 images, over the limit of 3")
    assert "--pages" not in run.stderr  # it needs a PDF
    assert "--each" in run.stderr and "--max-pages 4" in run.stderr
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 2)
    run = docqa(mmcli, server, doc, folder / "0.png", folder / "1.png", "q", "--max-pages", "3")
    refused(run, server, 2, "4 pages (2 of them images), over the limit of 3")
    assert "--pages 1-3" in run.stderr and "fewer images" in run.stderr


def test_long_document_needs_pages_or_a_higher_limit(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "long.pdf", 60)
    run = docqa(mmcli, server, doc, "q")
    refused(run, server, 2, "too many pages", "60 pages", "50")
    assert "--pages 1-50" in run.stderr and "--max-pages 60" in run.stderr
    run = docqa(mmcli, server, doc, "q", "--max-pages", "10", "--pages", "1-12", "--dry-run", "--json")
    assert run.code == 0 and len(json.loads(run.stdout)["items"]) == 12  # asked for explicitly
    run = docqa(mmcli, server, doc, "q", "--max-pages", "60", "--dry-run", "--json", "--family", "qwen2.5-vl",
                "--max-tokens-per-image", "16")
    assert run.code == 0 and len(json.loads(run.stdout)["items"]) == 60
    assert server.requests == []


def test_ask_points_pdfs_at_docqa(mmcli, server, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 1)
    run = mmcli("ask", doc, "q", "--base-url", server.base_url)
    refused(run, server, 3, "PDF document")
    assert "mmcli docqa" in run.stderr


def test_other_bad_inputs(mmcli, server, tmp_path):
    refused(docqa(mmcli, server, "only a question"), server, 2, "no document")
    notes = tmp_path / "notes.pdf"
    notes.write_text("just some text, named like a PDF\n")
    refused(docqa(mmcli, server, notes, "q"), server, 3, "notes.pdf")
    refused(docqa(mmcli, server, media.make_small_png(tmp_path), "q", "--pages", "1"), server, 2, "--pages")
    refused(docqa(mmcli, server, "http://127.0.0.1:9/doc.pdf", "q", "--pass-url"), server, 3, "PDF URL")
