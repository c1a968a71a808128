"""Bad videos and bad video options: one clean error line, the right exit code, and nothing sent."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_clean_error
from tests.support import media
from tests.test_video_fixtures import (make_8k, make_avi_claiming, make_truncated, make_undecodable,
                                       make_without_video, write_clip)

MODEL = "qwen2.5-vl-test"


def _zero_byte(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _text_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 20)
    return path


BAD_FILES = [
    (_zero_byte, "empty"),
    (lambda p: make_truncated(p / "cut.mp4"), "cannot read video"),
    (_text_named_mp4, "looks like text"),
    (lambda p: make_without_video(p / "sound.mp4"), "no video stream"),
    (lambda p: write_clip(p / "still.mp4", frames=1), "single frame"),
    (lambda p: make_undecodable(p / "av1.mp4"), "AV1"),
    (lambda p: make_8k(p / "8k.avi"), "7680x4320"),
    (lambda p: make_avi_claiming(p / "half.avi", claimed_frames=100, frames=40), "truncated"),
    (lambda p: media.make_small_png(p), "takes video"),
]


@pytest.mark.parametrize(("make", "fragment"), BAD_FILES,
                         ids=["zero-byte", "truncated-mp4", "text-named-mp4", "no-video-stream", "one-frame",
                              "undecodable-codec", "8k", "truncated-avi", "an-image"])
def test_bad_video_files_exit_3_before_sending(mmcli, server, tmp_path, make, fragment):
    path = make(tmp_path)
    run = mmcli("video", path, "--base-url", server.base_url, "-m", MODEL)
    assert_clean_error(run, 3, fragment)
    assert str(path.name) in run.stderr
    assert server.requests == []


@pytest.mark.parametrize(("args", "fragment"), [
    (("--start", "2", "--end", "1"), "not before --end"),
    (("--start", "9"), "beyond the end"),
    (("--start", "1:75"), "invalid time"),
    (("--end", "soon"), "invalid time"),
    (("--frames", "5"), "must be even"),
    (("--frames", "8", "--fps", "1"), "--frames"),
    (("--frames", "80", "--as", "images"), "more than the 50 frames"),
    (("--frames", "40"), "more than this endpoint keeps of a frame list"),
    (("--min-frames", "12", "--max-frames", "6"), "--min-frames"),
    (("--as", "gif"), "--as"),
    (("--max-request-mb", "0.01"), "does not fit"),
    (("--as", "file", "--max-request-mb", "0.01"), "too large to send as a file"),
    (("--as", "file", "--start", "1"), "cannot trim"),
    (("--max-pixels", "5000"), "pixel budget"),
    # Budgets have ceilings: refused before any frame is decoded (this once took minutes and 12 GB).
    (("--min-pixels", "999999999"), "above the most a qwen2.5-vl model takes"),
    (("--max-pixels", "9000", "--min-pixels", "50000"), "--min-pixels is above --max-pixels"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_bad_video_options_exit_2_before_sending(mmcli, server, tmp_path, args, fragment):
    clip = write_clip(tmp_path / "clip.mp4", frames=50)  # 2 s at 25 fps
    run = mmcli("video", clip, *args, "--base-url", server.base_url, "-m", MODEL)
    assert_clean_error(run, 2, fragment)
    assert server.requests == []


def test_typer_checks_option_types(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=10)
    run = mmcli("video", clip, "--fps", "fast", "--base-url", server.base_url, "-m", MODEL)
    assert run.code == 2 and "Traceback" not in run.output
    assert server.requests == []


def test_a_start_past_what_the_header_claims_is_checked_against_the_frames(mmcli, server, tmp_path):
    # The header says 20 frames (0.8 s); the stream really holds 2 s, so --start 1.5 is fine.
    clip = make_avi_claiming(tmp_path / "short-header.avi", claimed_frames=20, frames=50)
    run = mmcli("video", clip, "--start", "1.5", "--base-url", server.base_url, "-m", MODEL, "--json")
    assert run.code == 0, run.stderr
    times = json.loads(run.stdout)["plan"]["items"][0]["details"]["timestamps"]
    assert times[0] >= 1.5 and times[-1] == pytest.approx(1.96)


def test_a_bad_video_among_images_in_ask_stops_before_sending(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    broken = make_truncated(tmp_path / "cut.mp4")
    run = mmcli("ask", photo, broken, "q", "--base-url", server.base_url, "-m", MODEL)
    assert_clean_error(run, 3, "cut.mp4")
    assert server.requests == []
