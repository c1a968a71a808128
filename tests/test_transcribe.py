"""`mmcli transcribe` against a local Whisper-style endpoint: what is uploaded, and how replies are joined."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import assert_clean_error
from tests.support import sound
from tests.support.transcription_server import MODEL, TranscriptionServer

OUTPUT_EXISTS = 2  # an output file in the way is a usage error, as in detect


@pytest.fixture
def whisper():
    with TranscriptionServer() as srv:
        yield srv


def transcribe(mmcli, whisper, *args, expect=0):
    run = mmcli("transcribe", *args, "--base-url", whisper.base_url)
    assert run.code == expect, run.stderr
    return run


def speech_with_pauses(seconds: float, rate: int, pauses: list[float]) -> np.ndarray:
    """Speech-like noise with 0.6 s of silence centred on each time in `pauses`."""
    signal = sound.speechlike(seconds, rate, seed=3) + 0.3 * sound.tone(seconds, rate, 300)
    for t in pauses:
        signal[int((t - 0.3) * rate):int((t + 0.3) * rate)] = 0.0
    return signal


def test_one_file_is_sent_as_16k_mono_wav_multipart(mmcli, whisper, tmp_path):
    path = sound.write_audio(tmp_path / "memo.m4a", sound.chirp(5.0, 44100), 44100, "m4a",
                             sound.speechlike(5.0, 44100))
    run = transcribe(mmcli, whisper, path, "--language", "en", "--prompt", "Names: Ada")
    [upload] = whisper.uploads
    assert upload.fields == {"model": MODEL, "language": "en", "prompt": "Names: Ada", "response_format": "json"}
    assert upload.content_type == "audio/wav" and upload.filename.endswith(".wav")
    assert (upload.rate, upload.channels) == (16000, 1) and abs(upload.seconds - 5.0) <= 0.010
    assert run.stdout == "piece 1 lasts 5.00 seconds.\n"


def test_a_long_file_is_split_at_quiet_points_and_joined(mmcli, whisper, tmp_path):
    # 0.3 MB holds about 9.2 s of 16 kHz 16-bit audio: pauses at 8 s and 16 s are where it should cut.
    signal = speech_with_pauses(24.0, 16000, [8.0, 16.0])
    path = sound.write_audio(tmp_path / "talk.flac", signal, 16000, "flac")
    run = transcribe(mmcli, whisper, path, "--max-upload-mb", "0.3", "--format", "json")
    lengths = [u.seconds for u in whisper.uploads]
    assert len(lengths) == 3 and abs(sum(lengths) - 24.0) < 1e-6
    assert all(len(u.audio) <= 300_000 for u in whisper.uploads)
    cuts = np.cumsum(lengths)[:-1]
    assert all(abs(cut - t) <= 0.3 for cut, t in zip(cuts, [8.0, 16.0]))  # inside the silences
    result = json.loads(run.stdout)
    assert result["text"].startswith("piece 1 lasts") and "piece 3 lasts" in result["text"]
    starts = [s["start"] for s in result["segments"]]
    assert len(starts) == 6 and starts == sorted(starts)
    assert result["segments"][2]["start"] == pytest.approx(cuts[0], abs=1e-3)  # piece 2 offset by piece 1
    assert result["segments"][-1]["end"] == pytest.approx(24.0, abs=1e-3)


def test_srt_written_beside_the_input_never_clobbered(mmcli, whisper, tmp_path):
    signal = speech_with_pauses(12.0, 16000, [6.0])
    path = sound.write_audio(tmp_path / "clip.wav", signal, 16000, "wav")
    run = transcribe(mmcli, whisper, path, "--format", "srt", "-o", "--max-upload-mb", "0.25")
    srt = (tmp_path / "clip.srt").read_text()
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == 4 and blocks[0].startswith("1\n00:00:00,000 --> 00:00:0")
    assert re.match(r"3\n00:00:0\d,\d{3} --> ", blocks[2]) and "piece 2 first half." in blocks[2]
    assert run.stdout == ""
    again = mmcli("transcribe", path, "--format", "srt", "-o", "--base-url", whisper.base_url)
    assert_clean_error(again, OUTPUT_EXISTS, "output file exists", "clip.srt")
    assert len(whisper.uploads) == 2  # the second run sent nothing
    assert (tmp_path / "clip.srt").read_text() == srt


def test_vtt_has_a_header_and_dotted_times(mmcli, whisper, tmp_path):
    path = sound.write_audio(tmp_path / "a.ogg", sound.tone(3.0, 48000), 48000, "ogg")
    run = transcribe(mmcli, whisper, path, "--format", "vtt")
    assert run.stdout.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\npiece 1 first half.\n")
    assert whisper.uploads[0].fields["response_format"] == "verbose_json"


def test_the_sound_of_a_video_is_transcribed(mmcli, whisper, tmp_path):
    path = sound.write_audio(tmp_path / "voice.webm", sound.tone(2.0, 48000), 48000, "webm")
    transcribe(mmcli, whisper, path)
    assert abs(whisper.uploads[0].seconds - 2.0) <= 0.010


def test_bad_files_are_found_before_anything_is_sent(mmcli, whisper, tmp_path):
    good = sound.write_audio(tmp_path / "good.wav", sound.tone(1.0, 16000), 16000, "wav")
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio at all\n" * 10)
    run = mmcli("transcribe", good, bad, "--base-url", whisper.base_url)
    assert_clean_error(run, 3, "bad.mp3")
    assert whisper.uploads == []


def test_dry_run_lists_the_pieces_and_sends_nothing(mmcli, whisper, tmp_path):
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(7.0, 16000), 16000, "wav")
    run = transcribe(mmcli, whisper, path, "--dry-run", "--max-upload-mb", "0.1", "--json")
    [planned] = json.loads(run.stdout)["files"]
    assert len(planned["pieces"]) == 3 and planned["pieces"][-1]["end"] == 7.0
    assert whisper.uploads == []


def test_dry_run_without_json_prints_lines_as_every_other_command(mmcli, whisper, tmp_path):
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(7.0, 16000), 16000, "wav")
    run = transcribe(mmcli, whisper, path, "--dry-run", "--max-upload-mb", "0.1", "--language", "de")
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{path}: 3 piece(s), as ") and lines[0].endswith(", language de")
    assert not run.stdout.lstrip().startswith("{")
    assert lines[1].startswith("  piece 1: 0.0-") and lines[3].endswith(" bytes") and "-7.0 s" in lines[3]
    assert lines[-1] == "(nothing sent)" and whisper.uploads == []


def test_a_failing_later_piece_keeps_the_text_of_the_earlier_ones(mmcli, whisper, tmp_path):
    signal = speech_with_pauses(24.0, 16000, [8.0, 16.0])
    path = sound.write_audio(tmp_path / "talk.flac", signal, 16000, "flac")
    whisper.fail_from = 3  # the third upload (and its retries) fail
    run = transcribe(mmcli, whisper, path, "--max-upload-mb", "0.3", expect=5)
    assert run.stdout.startswith("piece 1 lasts") and "piece 2 lasts" in run.stdout
    assert "stopped at piece 3 of 3" in run.stderr and "Traceback" not in run.stderr


def test_a_failing_later_piece_keeps_the_segments_in_json(mmcli, whisper, tmp_path):
    signal = speech_with_pauses(24.0, 16000, [8.0, 16.0])
    path = sound.write_audio(tmp_path / "talk.flac", signal, 16000, "flac")
    whisper.fail_from = 2
    run = transcribe(mmcli, whisper, path, "--max-upload-mb", "0.3", "--json", expect=5)
    data = json.loads(run.stdout)
    [document] = data["transcripts"]
    assert document["complete"] is False and document["text"].startswith("piece 1 lasts") and data["error"]


def test_two_inputs_that_would_write_one_file_are_refused_before_sending(mmcli, whisper, tmp_path):
    a = sound.write_audio(tmp_path / "memo.flac", sound.chirp(2.0, 16000), 16000, "flac")
    b = sound.write_audio(tmp_path / "memo.wav", sound.chirp(2.0, 16000), 16000, "wav")
    run = transcribe(mmcli, whisper, a, b, "-o", expect=2)
    assert_clean_error(run, 2, "same output file")
    assert whisper.uploads == [] and not (tmp_path / "memo.txt").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB filesystem (tmpfs), so a write can run out of space; needs root to mount."""
    import os
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                            capture_output=True).returncode != 0:
        pytest.skip("mounting a small filesystem needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_transcript_that_cannot_be_written_is_still_shown(mmcli, whisper, small_disk):
    path = sound.write_audio(small_disk / "memo.flac", sound.chirp(2.0, 16000), 16000, "flac")
    with open(small_disk / "filler", "wb", buffering=0) as handle:  # the disk is full before the answer comes
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    run = mmcli("transcribe", path, "-o", "--base-url", whisper.base_url)
    assert run.code == 9, (run.code, run.stderr)
    assert run.stdout.startswith("piece 1 lasts") and not (small_disk / "memo.txt").exists()


@pytest.mark.parametrize("segments", [
    [{"start": 0, "end": "x", "text": "ok"}],
    [{"start": 1e308, "end": float("inf"), "text": "ok"}],
    [{"start": 10 ** 400, "end": 10 ** 400, "text": "ok"}],  # whole numbers too large for a float
    [{"start": -5, "end": None, "text": "ok"}],
    [{"start": 0, "end": 1, "text": None}, "not a segment", {"start": 0, "end": 1, "text": 3}],
])
def test_odd_segment_times_and_texts_never_lose_the_text(mmcli, whisper, tmp_path, segments):
    path = sound.write_audio(tmp_path / "memo.wav", sound.speechlike(3.0, 16000), 16000, "wav")
    whisper.segments = json.loads(json.dumps(segments).replace("Infinity", "1e999"))
    run = transcribe(mmcli, whisper, path, "--format", "srt")
    assert "ok" in run.stdout and "None" not in run.stdout
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d),(\d\d\d)", run.stdout)
    assert stamps and all(int(h) == 0 and int(m) == 0 and int(s) <= 3 for h, m, s, _ in stamps)


def test_a_413_on_transcribe_hints_at_the_upload_size(mmcli, whisper, tmp_path):
    path = sound.write_audio(tmp_path / "memo.wav", sound.speechlike(2.0, 16000), 16000, "wav")
    whisper.status = 413
    run = transcribe(mmcli, whisper, path, expect=4)
    assert "--max-upload-mb" in run.stderr and "--max-pixels" not in run.stderr


@pytest.mark.parametrize("served", [[MODEL], ["qwen2.5-vl-test"]])
def test_a_server_without_a_transcription_route_says_so(mmcli, tmp_path, served):
    from tests.support.scripted_server import ScriptedServer

    path = sound.write_audio(tmp_path / "memo.wav", sound.speechlike(2.0, 16000), 16000, "wav")
    with ScriptedServer(models=served) as chat_only:  # 404 {"detail": "Not Found"} on /audio/transcriptions
        run = mmcli("transcribe", path, "--base-url", chat_only.base_url, "-m", MODEL)
    assert_clean_error(run, 4, "404")
    if served == [MODEL]:
        assert "no transcription route for this model" in run.stderr and "Whisper" in run.stderr
        assert "check --model" not in run.stderr
    else:  # the model is not there: the served ones are named
        assert "served models: qwen2.5-vl-test" in run.stderr and "transcription route" not in run.stderr
