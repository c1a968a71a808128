"""WAV and Ogg files whose own structure says they are cut short, or claim far more than they hold: refused
before anything is sent (FFmpeg trims a WAV header's claim to the file, so mmcli reads the header itself)."""

from __future__ import annotations

import struct

import pytest

from tests.conftest import assert_clean_error
from tests.support import sound
from tests.test_audio_bad_input import ask


@pytest.fixture
def wav(tmp_path):
    return sound.write_audio(tmp_path / "good.wav", sound.chirp(6.0, 16000), 16000, "wav")


def claiming(path, source, seconds: float):
    """A copy of a 16 kHz mono 16-bit WAV whose data chunk claims `seconds`."""
    data = bytearray(source.read_bytes())
    at = data.find(b"data", 12)
    data[at + 4:at + 8] = struct.pack("<I", int(seconds * 16000 * 2))
    path.write_bytes(bytes(data))
    return path


def test_a_truncated_wav_is_refused(mmcli, server, tmp_path, wav):
    bad = sound.truncated(tmp_path / "cut.wav", wav, keep=0.5)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "truncated", "cut.wav", "of the 6.00 s its header declares")
    assert server.chat_requests() == []


def test_a_wav_claiming_ten_hours_is_refused_before_decoding(mmcli, server, tmp_path, wav):
    bad = claiming(tmp_path / "ten-hours.wav", wav, 36000)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "audio too long", "36000.0 s", "ten-hours.wav")
    assert server.chat_requests() == []


def test_a_wav_claiming_a_little_more_than_it_holds_is_truncated(mmcli, server, tmp_path, wav):
    bad = claiming(tmp_path / "more.wav", wav, 9.0)
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "truncated", "of the 9.00 s its header declares")
    assert server.chat_requests() == []


def test_a_wav_of_unknown_size_and_a_whole_one_still_go(mmcli, server, tmp_path, wav):
    streamed = claiming(tmp_path / "piped.wav", wav, 0xFFFFFFFF / 32000)  # written to a pipe: size unknown
    for good in (wav, streamed):
        run = ask(mmcli, server, good, "q")
        assert run.code == 0, run.stderr
    assert len(server.chat_requests()) == 2


def test_a_truncated_ogg_is_refused(mmcli, server, tmp_path):
    good = sound.write_audio(tmp_path / "good.ogg", sound.chirp(6.0, 48000), 48000, "ogg")
    for keep in (0.5, 0.999):
        bad = sound.truncated(tmp_path / f"cut-{keep}.ogg", good, keep=keep)
        run = ask(mmcli, server, bad, "q")
        assert_clean_error(run, 3, "truncated", bad.name)
    assert ask(mmcli, server, good, "q").code == 0
    assert len(server.chat_requests()) == 1


def test_an_ogg_cut_at_a_page_boundary_is_refused(mmcli, server, tmp_path):
    good = sound.write_audio(tmp_path / "good.ogg", sound.chirp(6.0, 48000), 48000, "ogg")
    data = good.read_bytes()
    last = data.rfind(b"OggS")  # drop the last page, with the end-of-stream flag
    bad = tmp_path / "paged.ogg"
    bad.write_bytes(data[:last])
    run = ask(mmcli, server, bad, "q")
    assert_clean_error(run, 3, "truncated", "paged.ogg", "without the last page")
    assert server.chat_requests() == []
