"""The bad-audio corpus: one clear line, exit 3 (or 2 for a request planned too big), nothing sent."""

from __future__ import annotations

import time

import pytest

from tests.conftest import assert_clean_error
from tests.support import sound

MODEL = "qwen2-audio-7b-instruct-test"


def ask(mmcli, server, *args):
    return mmcli("ask", *args, "--base-url", server.base_url, "-m", MODEL)


@pytest.fixture
def mp3(tmp_path):
    return sound.write_audio(tmp_path / "good.mp3", sound.chirp(6.0, 44100), 44100, "mp3")


@pytest.fixture
def flac(tmp_path):
    return sound.write_audio(tmp_path / "good.flac", sound.chirp(12.0, 16000), 16000, "flac")


def test_truncated_mp3(mmcli, server, tmp_path, mp3):
    bad = sound.truncated(tmp_path / "cut.mp3", mp3, keep=0.5)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "truncated", "cut.mp3")
    assert "of the 6.00 s its header declares" in run.stderr
    assert server.chat_requests() == []


def test_truncated_flac(mmcli, server, tmp_path, flac):
    bad = sound.truncated(tmp_path / "cut.flac", flac, keep=0.4)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "cut.flac")
    assert server.chat_requests() == []


def test_text_file_named_wav(mmcli, server, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are my meeting notes, not a recording\n" * 20)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "not a supported media file", "notes.wav", "looks like text")
    assert "audio" in run.stderr.split("hint:")[-1]
    assert server.chat_requests() == []


def test_zero_length_file(mmcli, server, tmp_path):
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "empty", "empty.wav")
    assert server.chat_requests() == []


def test_garbage_after_an_id3_header(mmcli, server, tmp_path):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(range(256)) * 4)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "noise.mp3")
    assert server.chat_requests() == []


def test_a_ten_hour_file_is_refused_before_decoding(mmcli, server, tmp_path, flac):
    ten_hours = sound.flac_claiming(tmp_path / "ten-hours.flac", flac, 16000 * 36000)
    began = time.monotonic()
    run = ask(mmcli, server, ten_hours, "q")
    assert_clean_error(run, 3, "audio too long", "36000.0 s", "600 s limit")
    assert "--start/--end" in run.stderr
    assert time.monotonic() - began < 20  # decoding ten hours would take far longer than starting up
    assert server.chat_requests() == []


def test_a_header_that_says_less_is_caught_while_decoding(mmcli, server, tmp_path, flac):
    unknown = sound.flac_claiming(tmp_path / "unsized.flac", flac, 0)
    run = ask(mmcli, server, unknown, "q", "--max-audio-seconds", "5")
    assert_clean_error(run, 3, "audio too long", "5 s limit", "while decoding")
    assert server.chat_requests() == []


def test_too_many_parts_is_refused_with_the_numbers(mmcli, server, tmp_path):
    clip = sound.write_audio(tmp_path / "long.wav", sound.tone(65.0, 16000), 16000, "wav")
    run = ask(mmcli, server, clip, "q", "--max-audio-parts", "2")
    assert_clean_error(run, 2, "too many audio parts", "65.0 s makes 3 parts of 30 s", "limit of 2")
    assert server.chat_requests() == []


def test_start_past_the_end(mmcli, server, flac):
    run = ask(mmcli, server, flac, "q", "--start", "1:00")
    assert_clean_error(run, 3, "--start is past the end", "12.00 s")
    assert server.chat_requests() == []


@pytest.mark.parametrize("args, fragment", [
    (("--start", "5", "--end", "4"), "must be after --start"),
    (("--audio-format", "mp3"), "wav or flac"),
    (("--audio-format", ""), "wav or flac"),
    (("--start", "soon"), "invalid time"),
    (("--max-audio-seconds", "inf"), "not a finite number"),
])
def test_bad_audio_options_are_usage_errors(mmcli, server, flac, args, fragment):
    run = ask(mmcli, server, flac, "q", *args)
    assert_clean_error(run, 2, fragment)
    assert "\nhint: " in run.stderr
    assert server.chat_requests() == []
