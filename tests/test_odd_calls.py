"""Odd calls a new user makes: each gets one `mmcli: error:` line and the right exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmcli.media.sniff import sniff
from tests.conftest import Run, assert_clean_error
from tests.support import media, pdfs
from tests.support.scripted_server import ScriptedServer

ROOT = Path(__file__).parent.parent
needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "0", "-1", "86401"])
def test_a_timeout_out_of_range_is_a_usage_error(mmcli, server, tmp_path, value):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--base-url", server.base_url, "--timeout", value)
    if value in ("inf", "nan"):  # refused as every float option refuses them (tests/test_finite_numbers.py)
        assert_clean_error(run, 2, "--timeout", "not a finite number")
    else:
        assert_clean_error(run, 2, "invalid timeout")
        assert "86400" in run.stderr  # the hint names the cap
    assert server.chat_requests() == []


@pytest.mark.parametrize("value, fragment", [("inf", "not a finite number"), ("90000", "invalid timeout")])
def test_a_timeout_from_the_environment_is_checked_too(mmcli, server, tmp_path, value, fragment):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--base-url", server.base_url, env={"MMCLI_TIMEOUT": value})
    assert_clean_error(run, 2, fragment)


def test_a_day_long_timeout_is_accepted(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--base-url", server.base_url, "--timeout", "86400")
    assert run.code == 0, run.stderr


def _with_stdin_closed(args: list[str], env: dict) -> Run:
    # `mmcli ... <&-`: the process starts with no file descriptor 0 at all.
    script = " ".join([sys.executable, "-m", "mmcli", *args]) + " <&-"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("args", [["ask", "-", "q"], ["video", "-"], ["docqa", "-", "q"], ["detect", "-", "q"]])
def test_closed_standard_input_is_bad_media(clean_env, args):
    with ScriptedServer() as srv:
        run = _with_stdin_closed(args + ["--base-url", srv.base_url], clean_env)
        assert_clean_error(run, 3, "standard input is closed")
        assert srv.requests == []


def test_a_config_file_that_is_not_utf8(mmcli, tmp_path):
    config_dir = tmp_path / "config" / "mmcli"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_bytes('profile = "café"\n'.encode("latin-1"))
    run = mmcli("ask", "hello", "--dry-run")
    assert_clean_error(run, 2, "invalid config file", "config.toml", "UTF-8")


@needs_poppler
@pytest.mark.parametrize("spec,fragment", [
    ("10-", "page 10 is past the end: the document has 6 pages"),
    ("7-9", "page 7 is past the end: the document has 6 pages"),
    ("5-3", "runs backwards"),
])
def test_pages_past_the_end_say_so(mmcli, server, tmp_path, spec, fragment):
    doc = pdfs.text_pdf(tmp_path / "paper.pdf", 6)
    run = mmcli("docqa", doc, "q", "--pages", spec, "--base-url", server.base_url)
    assert_clean_error(run, 2, fragment)
    assert server.requests == []


@pytest.mark.parametrize("command", ["docqa", "detect"])
@pytest.mark.parametrize("spec", ["", "  "])
def test_an_empty_page_list_is_a_usage_error(mmcli, server, tmp_path, command, spec):
    doc = tmp_path / "paper.pdf"
    doc.write_bytes(b"%PDF-1.4\n")  # never opened: the option is refused while parsing
    run = mmcli(command, doc, "q", "--pages", spec, "--base-url", server.base_url)
    assert_clean_error(run, 2, "--pages", "empty")
    assert run.stderr.splitlines()[-1] == f"hint: see 'mmcli {command} --help'"
    assert server.requests == []


def test_a_bad_start_time_says_what_is_wrong_and_how_to_write_it(mmcli, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    run = mmcli("video", video, "--start", "abc", "--dry-run")
    assert_clean_error(run, 2, "invalid time", "--start abc")
    error, hint = run.stderr.splitlines()
    why = error.rsplit("): ", 1)[-1]
    assert hint.startswith("hint: ") and why not in hint, run.stderr


@pytest.mark.parametrize("head,expected", [
    (b"\x00\x00\x00\x18ftypisom", "an MPEG-4 video"), (b"RIFF\x00\x00\x00\x00AVI ", "an AVI video"),
    (b"\x00\x00\x00\x18ftypavif", "an AVIF image"), (b"ID3\x03", "an MP3 audio"), (b"OggS", "an Ogg audio"),
    (b"\xff\xd8\xff\xe0", "a JPEG image"), (b"%PDF-1.7", "a PDF document"), (b"\x1a\x45\xdf\xa3", "a Matroska video"),
    (b"just text", "unrecognised data"),
])
def test_descriptions_take_the_article_they_are_spoken_with(head, expected):
    assert sniff(head.ljust(32, b"\x00")).a_description == expected


def test_a_video_given_to_docqa_is_an_mpeg4_video(mmcli, server, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    run = mmcli("docqa", video, "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, "it is an MPEG-4 video")
