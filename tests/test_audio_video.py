"""`mmcli video --audio`: the frames, then the sound track cut to the same --start/--end."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from tests.conftest import assert_clean_error
from tests.support import sound


def video_with_sound(path: Path, seconds: float = 4.0, rate: int = 44100) -> tuple[Path, np.ndarray]:
    """An MP4 with 10 fps pictures and an AAC chirp as its sound track."""
    signal = sound.chirp(seconds, rate)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="mono")
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5 % 255, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for i in range(0, len(signal), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(signal[None, i:i + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for packet in audio.encode(frame):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    return path, signal


def test_sound_follows_the_frames_cut_to_start_and_end(mmcli, server, tmp_path):
    clip, signal = video_with_sound(tmp_path / "talk.mp4")
    run = mmcli("video", clip, "what is said?", "--audio", "--start", "1", "--end", "3",
                "--base-url", server.base_url, "-m", "qwen2.5-omni-7b", "--json")
    assert run.code == 0, run.stderr
    content = server.chat_requests()[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["video_url", "input_audio", "text"]
    samples, rate, channels = sound.decode_sent(sound.part_bytes(content[1]))
    assert (rate, channels) == (16000, 1) and abs(len(samples) / 16000 - 2.0) <= 0.010
    ref = sound.reference(signal, 44100)[16000:48000]
    assert abs(sound.best_lag(ref, samples, max_lag=400)) <= 160
    items = json.loads(run.stdout)["plan"]["items"]
    assert [i["kind"] for i in items] == ["video", "audio"]
    assert (items[1]["details"]["start"], items[1]["details"]["end"]) == (1.0, 3.0)


def test_without_audio_only_frames_are_sent(mmcli, server, tmp_path):
    clip, _ = video_with_sound(tmp_path / "talk.mp4")
    run = mmcli("video", clip, "q", "--base-url", server.base_url, "-m", "qwen2.5-vl-test")
    assert run.code == 0, run.stderr
    content = server.chat_requests()[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["video_url", "text"]


def test_a_video_without_a_sound_track_is_refused(mmcli, server, tmp_path):
    silent = sound.silent_video(tmp_path / "silent.mp4")
    run = mmcli("video", silent, "q", "--audio", "--base-url", server.base_url, "-m", "qwen2.5-omni-7b")
    assert_clean_error(run, 3, "no sound track", "silent.mp4")
    assert "leave out --audio" in run.stderr
    assert server.requests == []  # not even the model list was asked for
