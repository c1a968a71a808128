"""`mmcli video` against the tier's real vLLM server: every transport is accepted, and for a frame
list the server counts exactly the visual tokens mmcli planned (+2 for the vision start/end markers).

The server allows one video per request and 4096 tokens of context, so the clips are short and small.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mmcli")
pytest.importorskip("cv2")

from tests.test_video_fixtures import make_rotated, write_clip  # noqa: E402

PROMPT = "Describe this."
FACTOR = 28


def run_mmcli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, timeout=300, env=env,
                          check=False)


def mmcli_json(server, command: str, *args: str) -> dict:
    proc = run_mmcli(command, *args, "--base-url", server.base_url, "--model", server.model,
                     "--max-tokens", "1", "--temperature", "0", "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def text_only_tokens(vllm_server) -> int:
    return mmcli_json(vllm_server, "ask", PROMPT)["usage"]["prompt_tokens"]


def _clip(path: Path) -> Path:
    return write_clip(path, frames=50, fps=25, size=(320, 240))


def _longer_clip(path: Path) -> Path:
    return write_clip(path, frames=75, fps=25, size=(640, 360), texture=True)


def _phone_clip(path: Path) -> Path:
    return make_rotated(path, upright=(240, 320), frames=12)


@pytest.mark.parametrize(("make", "extra"), [
    (_clip, ()),
    (_clip, ("--frames", "8")),
    (_longer_clip, ("--total-pixels", "1000000")),
    (_phone_clip, ()),
], ids=["320x240-default", "320x240-8-frames", "640x360-small-budget", "rotated-portrait"])
def test_frame_list_costs_exactly_the_planned_tokens(vllm_server, text_only_tokens, tmp_path, make, extra):
    clip = make(tmp_path / "clip.mp4")
    result = mmcli_json(vllm_server, "video", str(clip), PROMPT, *extra)
    [item] = result["plan"]["items"]
    assert item["details"]["transport"] == "frames"
    frames, height, width = item["details"]["frames"], item["sent_height"], item["sent_width"]
    assert item["visual_tokens"] == frames // 2 * (height // FACTOR) * (width // FACTOR)
    assert result["usage"]["prompt_tokens"] - text_only_tokens == item["visual_tokens"] + 2


def test_video_beside_an_image_in_ask(vllm_server, text_only_tokens, tmp_path):
    import cv2
    import numpy as np

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((224, 224, 3), 90, np.uint8))
    result = mmcli_json(vllm_server, "ask", str(photo), str(_clip(tmp_path / "clip.mp4")), PROMPT)
    items = result["plan"]["items"]
    assert [i["kind"] for i in items] == ["image", "video"]
    planned = sum(i["visual_tokens"] for i in items)
    assert result["usage"]["prompt_tokens"] - text_only_tokens == planned + 2 * 2


def test_original_file_is_accepted_and_sampled_by_the_server(vllm_server, text_only_tokens, tmp_path):
    result = mmcli_json(vllm_server, "video", str(_clip(tmp_path / "clip.mp4")), PROMPT, "--as", "file")
    [item] = result["plan"]["items"]
    assert item["details"]["transport"] == "file" and item["visual_tokens"] is None
    # the server picks the frames itself: at least one pair at the smallest frame size, plus markers
    assert result["usage"]["prompt_tokens"] - text_only_tokens >= 128 + 2


def test_images_transport_is_accepted(vllm_server, text_only_tokens, tmp_path):
    result = mmcli_json(vllm_server, "video", str(_clip(tmp_path / "clip.mp4")), PROMPT, "--as", "images")
    [item] = result["plan"]["items"]
    assert item["details"]["frames"] == 4  # the server's image limit
    # each frame is a separate image with its own markers, plus a short timestamp label
    assert result["usage"]["prompt_tokens"] - text_only_tokens > item["visual_tokens"] + 4 * 2
