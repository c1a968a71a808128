"""`mmcli video` and videos in `mmcli ask` against a real local HTTP server: exactly which frames are sent, how."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from tests.support import media
from tests.test_video_fixtures import (RED, make_avi_claiming, make_rotated, make_vfr, read_index,
                                       write_clip)

MODEL = "qwen2.5-vl-test"  # the scripted server's model: a Qwen2.5-VL family name, 28-pixel grid


def run_video(mmcli, server, *args, model=MODEL, expect=0):
    run = mmcli("video", *args, "--base-url", server.base_url, "-m", model, "--json")
    assert run.code == expect, run.stderr
    return run, json.loads(run.stdout)


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def content(server) -> list[dict]:
    """The content parts of the last chat request."""
    return server.chat_requests()[-1].json["messages"][-1]["content"]


def frame_list(part: dict) -> list[np.ndarray]:
    """The frames of a `data:video/jpeg;base64,<f1>,<f2>,...` part."""
    url = part["video_url"]["url"]
    head, _, payload = url.partition(",")
    assert head == "data:video/jpeg;base64"
    return [decode_jpeg(base64.b64decode(chunk, validate=True)) for chunk in payload.split(",")]


def test_frames_transport_sends_exactly_the_planned_frames(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=50, fps=25, size=(320, 240))
    _, result = run_video(mmcli, server, clip)
    [item] = result["plan"]["items"]
    details = item["details"]
    assert item["kind"] == "video" and details["transport"] == "frames" and details["frames"] == 4
    assert details["timestamps"] == pytest.approx([0.0, 0.64, 1.32, 1.96])
    parts = content(server)
    assert [p["type"] for p in parts] == ["video_url", "text"]
    assert parts[1]["text"] == "Describe this video in detail."
    frames = frame_list(parts[0])
    assert [read_index(f) for f in frames] == [0, 16, 33, 49]  # qwen-vl-utils' linspace indices
    assert {f.shape[:2] for f in frames} == {(item["sent_height"], item["sent_width"])}
    assert item["sent_width"] % 28 == 0 and item["sent_height"] % 28 == 0
    assert item["sent_width"] * item["sent_height"] >= 128 * 28 * 28  # the family's video minimum
    assert item["visual_tokens"] == 2 * (item["sent_height"] // 28) * (item["sent_width"] // 28)
    assert item["bytes"] == sum(len(base64.b64decode(c)) for c in parts[0]["video_url"]["url"].split(",")[1:])


def test_images_transport_for_generic_models_labels_each_frame(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=50, fps=25, fourcc="MJPG")
    _, result = run_video(mmcli, server, clip, "what moves?", "--frames", "5", model="gpt-4o-mini")
    [item] = result["plan"]["items"]
    assert item["details"]["transport"] == "images" and item["visual_tokens"] is None
    parts = content(server)
    assert [p["type"] for p in parts] == ["text", "image_url"] * 5 + ["text"]
    assert [p["text"] for p in parts[:-1:2]] == ["Frame at 0:00.0", "Frame at 0:00.5", "Frame at 0:01.0",
                                                  "Frame at 0:01.5", "Frame at 0:02.0"]
    images = [decode_jpeg(base64.b64decode(p["image_url"]["url"].split(",", 1)[1])) for p in parts[1:-1:2]]
    assert [read_index(i) for i in images] == [0, 12, 24, 37, 49]  # an odd count is fine as images
    assert parts[-1]["text"] == "what moves?"


def test_file_transport_sends_the_original_bytes(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    _, result = run_video(mmcli, server, clip, "--as", "file")
    [item] = result["plan"]["items"]
    assert item["details"]["transport"] == "file" and item["visual_tokens"] is None
    url = content(server)[0]["video_url"]["url"]
    assert url.startswith("data:video/mp4;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == clip.read_bytes()


def test_ask_routes_videos_beside_images_in_order(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    clip = write_clip(tmp_path / "clip.mp4", frames=30)
    run = mmcli("ask", photo, clip, "is it in the video?", "--base-url", server.base_url, "-m", MODEL, "--json")
    assert run.code == 0, run.stderr
    items = json.loads(run.stdout)["plan"]["items"]
    assert [i["kind"] for i in items] == ["image", "video"]
    assert [p["type"] for p in content(server)] == ["image_url", "video_url", "text"]


def test_rotated_phone_video_is_sent_upright(mmcli, server, tmp_path):
    clip = make_rotated(tmp_path / "phone.mp4", upright=(240, 320), frames=8)
    _, result = run_video(mmcli, server, clip)
    [item] = result["plan"]["items"]
    assert (item["original_width"], item["original_height"]) == (240, 320)
    assert item["details"]["rotation"] == 90
    frames = frame_list(content(server)[0])
    for frame in frames:
        height, width = frame.shape[:2]
        assert height > width
        assert tuple(int(v) for v in frame[height // 32, width // 32]) == pytest.approx(RED, abs=60)
    assert [read_index(f) for f in frames] == [0, 2, 5, 7]


def test_variable_frame_rate_is_sampled_evenly_in_time(mmcli, server, tmp_path):
    # 40 frames in the first 1.6 s, then 20 frames over 4 s: sampling by index would bunch up early.
    clip = make_vfr(tmp_path / "vfr.mp4", [(40, 0.04), (20, 0.2)])
    _, result = run_video(mmcli, server, clip)
    times = result["plan"]["items"][0]["details"]["timestamps"]
    gaps = np.diff(times)
    assert len(times) >= 8 and gaps.max() < 2.2 * gaps.min()
    frames = frame_list(content(server)[0])
    real_times = [0.04 * i for i in range(40)] + [1.6 + 0.2 * j for j in range(20)]
    # each sent frame is the source frame shown at its reported timestamp
    assert [real_times[read_index(f)] for f in frames] == pytest.approx(times, abs=1e-3)


@pytest.mark.parametrize(("claimed", "indices"), [(20, [0, 16, 33, 49]), (51, [0, 17, 33, 49]),
                                                  (0, [0, 16, 33, 49]), (0xFFFFFFFF, [0, 16, 33, 49])],
                         ids=["claims-fewer", "claims-one-more", "claims-none", "claims-absurd"])
def test_a_container_that_lies_about_its_length_is_not_believed(mmcli, server, tmp_path, claimed, indices):
    clip = make_avi_claiming(tmp_path / "lies.avi", claimed_frames=claimed, frames=50)
    _, result = run_video(mmcli, server, clip)
    [item] = result["plan"]["items"]
    assert any("container" in note for note in item["notes"])
    assert item["details"]["timestamps"][-1] == pytest.approx(1.96)  # the real last frame
    assert [read_index(f) for f in frame_list(content(server)[0])] == indices


def test_start_end_and_an_exact_count(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=100, fps=25)
    _, result = run_video(mmcli, server, clip, "--start", "0:01", "--end", "3.5", "--frames", "6")
    times = result["plan"]["items"][0]["details"]["timestamps"]
    assert len(times) == 6 and times[0] == pytest.approx(1.0) and times[-1] == pytest.approx(3.48)
    assert [read_index(f) for f in frame_list(content(server)[0])] == [round(t * 25) for t in times]


def test_start_late_in_a_long_video_seeks_and_still_gets_the_right_frames(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", frames=500, fps=25, size=(160, 120))  # 20 s
    _, result = run_video(mmcli, server, clip, "--start", "15", "--fps", "1")
    times = result["plan"]["items"][0]["details"]["timestamps"]
    assert times[0] == pytest.approx(15.0) and times[-1] == pytest.approx(19.96)
    assert [read_index(f) for f in frame_list(content(server)[0])] == [round(t * 25) for t in times]


def test_an_oversized_request_is_shrunk_to_fit_and_says_so(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "noisy.mp4", frames=40, size=(640, 480), texture=True)
    run, result = run_video(mmcli, server, clip, "--frames", "8", "--max-request-mb", "0.4")
    [item] = result["plan"]["items"]
    [request] = server.chat_requests()
    assert len(request.body) <= 400_000
    assert "would not fit" in run.stderr and "warning" in run.stderr
    assert any("would not fit" in note for note in item["notes"])
    assert item["details"]["frames"] == len(frame_list(content(server)[0]))


def test_video_from_standard_input(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=50)
    run = mmcli("video", "-", "--base-url", server.base_url, "-m", MODEL, "--json", stdin=clip.read_bytes())
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["plan"]["items"][0]["source"] == "stdin"
    assert [read_index(f) for f in frame_list(content(server)[0])] == [0, 16, 33, 49]


def test_dry_run_shows_frames_and_sends_nothing(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=50)
    run = mmcli("video", clip, "--base-url", server.base_url, "-m", MODEL, "--dry-run")
    assert run.code == 0, run.stderr
    assert "4 frames 0:00.0-0:02.0" in run.stdout and "visual tokens" in run.stdout
    assert server.requests == []


def test_lossless_applies_to_images_and_not_to_a_frame_list(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=50)
    run, _ = run_video(mmcli, server, clip, "--lossless")
    assert "--lossless does not apply" in run.stderr
    run, result = run_video(mmcli, server, clip, "--lossless", "--as", "images")
    assert result["plan"]["items"][0]["mime"] == "image/png"
    assert content(server)[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_video_url_passes_through_unchanged(mmcli, server):
    url = "https://videos.example.com/clip.mp4"
    _, result = run_video(mmcli, server, url, "--pass-url")
    assert result["plan"]["items"][0]["details"]["transport"] == "url"
    assert content(server)[0] == {"type": "video_url", "video_url": {"url": url}}


def test_long_video_shows_a_progress_bar_on_a_terminal_only(mmcli, clean_env, tmp_path):
    import os
    import pty
    import subprocess
    import sys
    import threading

    clip = write_clip(tmp_path / "long.mp4", frames=625, fps=25, size=(160, 120))  # 25 s
    args = [sys.executable, "-m", "mmcli", "video", str(clip), "--dry-run", "--json", "--family", "qwen2-vl"]
    piped = mmcli(*args[3:])
    assert piped.code == 0 and "reading" not in piped.stderr
    master, slave = pty.openpty()
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, env=clean_env, timeout=120, check=False)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    # stdout stays clean JSON; a plain endpoint keeps 32 frames of a frame list, so 32 are planned
    assert json.loads(proc.stdout)["items"][0]["details"]["frames"] == 32
    assert b"reading " + str(clip).encode() in bytes(seen) and b"/25" in bytes(seen)
