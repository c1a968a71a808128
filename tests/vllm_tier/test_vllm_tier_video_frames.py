"""Frame lists against real vLLM: a server `mmcli serve --device cpu` started keeps every frame and reads
the frames' real timing; the tier's plain server (vLLM's 32-frame default) gets at most 32 frames; and for
Qwen3-VL the prompt holds exactly the plan's visual tokens plus the frame labels the plan expects, which
name the frames' times in the source.

The `mmcli serve` server (the tiny Qwen3-VL, about a minute to start on 2 cores) serves this module only.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import tier
from conftest import prepared_tier

pytest.importorskip("mmcli")
pytest.importorskip("cv2")

from mmcli.core.wire import pair_labels  # noqa: E402
from tests.test_video_fixtures import write_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROMPT = "Describe."
LABEL = re.compile(r"<\d+\.\d seconds>")


@dataclass(frozen=True)
class Served:
    """The server `mmcli serve` started, and the environment of the user who started it."""

    env: dict
    base_url: str
    root_url: str
    model: str


def mmcli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def answer(env: dict, command: str, *args: str) -> dict:
    run = mmcli(env, command, *args, "--max-tokens", "1", "--temperature", "0", "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def private_env(root: Path) -> dict:
    """A user with a private home, config and state, and no endpoint settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "VLLM_"))}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        (root / name.lower()).mkdir(parents=True)
        env[name] = str(root / name.lower())
    env["MMCLI_AUTOSTART"] = "0"
    return env


def tier_paths():
    """The tier's venv and models; skipped when they cannot be had here (a failure where required, as in CI)."""
    return prepared_tier()


@pytest.fixture(scope="module")
def qwen3_served(tmp_path_factory):
    """The tiny Qwen3-VL served by `mmcli serve --device cpu` in the background; stopped after the module."""
    paths = tier_paths()
    env = private_env(tmp_path_factory.mktemp("mmcli_serve_qwen3"))
    port = tier.free_port()
    serve = mmcli(env, "serve", str(paths.models["qwen3-vl"]), "--device", "cpu", "--detach", "--port", str(port),
                  "--vllm-python", str(paths.python), "--cpu-kv-cache-gib", "1", "--max-model-len", "16384",
                  "--startup-timeout", "600", timeout=700)
    try:
        assert serve.returncode == 0, serve.stderr
        state = json.loads((Path(env["XDG_STATE_HOME"]) / "mmcli" / "server.json").read_text())
        assert state["frame_limit"] is None and state["request_mm_kwargs"] is True
        yield Served(env, state["base_url"], state["root_url"], state["model"])
    finally:
        stop = mmcli(env, "serve", "stop", timeout=120)
        assert stop.returncode == 0, stop.stderr


@pytest.fixture(scope="module")
def qwen3_text_only(qwen3_served) -> int:
    return answer(qwen3_served.env, "ask", PROMPT)["usage"]["prompt_tokens"]


def post(root_url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(root_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.load(reply)


def text_tokens(served: Served, texts: list[str]) -> int:
    """Tokens of each text tokenized on its own, as vLLM tokenizes each frame label."""
    return sum(post(served.root_url, "/tokenize", {"model": served.model, "prompt": text,
                                                   "add_special_tokens": False})["count"] for text in texts)


def tokenize_like(served: Served, plan: dict, *, timing: bool = True) -> dict:
    """POST /tokenize with the planned request: the same text, a frame list of as many frames of the sent
    size (the count depends on nothing else), and the request's media_io_kwargs unless told not to."""
    from PIL import Image

    [item] = plan["items"]
    jpeg = io.BytesIO()
    Image.new("RGB", (item["sent_width"], item["sent_height"]), (90, 120, 150)).save(jpeg, "JPEG")
    frame = base64.b64encode(jpeg.getvalue()).decode("ascii")
    url = "data:video/jpeg;base64," + ",".join([frame] * item["details"]["frames"])
    messages = json.loads(json.dumps(plan["request"]["messages"]))
    for part in messages[-1]["content"]:
        if part["type"] == "video_url":
            part["video_url"]["url"] = url
    body = {"model": served.model, "messages": messages, "add_generation_prompt": True, "return_token_strs": True}
    if timing:
        body["media_io_kwargs"] = plan["request"]["media_io_kwargs"]
    return post(served.root_url, "/tokenize", body)


def labels_in(tokenized: dict) -> list[str]:
    """The `<t seconds>` labels in a tokenized prompt (byte-level tokens: Ġ is a space)."""
    return LABEL.findall("".join(tokenized["token_strs"]).replace("\u0120", " "))


def qwen3_prompt(served: Served, text_only: int, plan: dict) -> int:
    """Prompt tokens the plan stands for: the text, the visual tokens, the markers and the frame labels."""
    labels = plan["inserted_text"]
    markers = 2 + 2 * len(labels)  # the template's start/end pair, and vLLM's around each frame pair
    return text_only + plan["totals"]["visual_tokens"] + markers + text_tokens(served, labels)


def test_a_64_frame_list_is_counted_whole_by_a_server_mmcli_started(qwen3_served, qwen3_text_only, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=400, fps=10, size=(160, 120))
    result = answer(qwen3_served.env, "video", str(clip), PROMPT, "--frames", "64")
    plan = result["plan"]
    [item] = plan["items"]
    assert plan["base_url"] == qwen3_served.base_url and plan["family"] == "qwen3-vl"
    assert item["details"]["frames"] == 64 and len(plan["inserted_text"]) == 32
    assert plan["request"]["media_io_kwargs"]["video"]["num_frames"] == -1
    # 32 frames would be about half the visual tokens: the prompt holds all 64
    assert result["usage"]["prompt_tokens"] == qwen3_prompt(qwen3_served, qwen3_text_only, plan)


def test_qwen3_frames_are_labelled_at_their_times_in_the_source(qwen3_served, qwen3_text_only, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=400, fps=10, size=(160, 120))
    result = answer(qwen3_served.env, "video", str(clip), PROMPT, "--start", "30", "--end", "36")
    plan = result["plan"]
    [item] = plan["items"]
    times = item["details"]["timestamps"]
    assert times[0] == pytest.approx(30.0) and times[-1] <= 36.0
    labels = plan["inserted_text"]
    assert len(labels) == len(times) // 2
    assert [float(label[1:].split()[0]) for label in labels] == pytest.approx(
        [(a + b) / 2 for a, b in zip(times[::2], times[1::2])], abs=0.1)
    assert result["usage"]["prompt_tokens"] == qwen3_prompt(qwen3_served, qwen3_text_only, plan)

    tokenized = tokenize_like(qwen3_served, plan)
    assert tokenized["count"] == result["usage"]["prompt_tokens"]  # the same prompt as the chat request's
    assert labels_in(tokenized) == labels and labels[0] == "<30.2 seconds>"
    # without the timing, vLLM numbers the frames 0, 1, 2, ... at 1 fps: what the plan expects elsewhere
    plain = labels_in(tokenize_like(qwen3_served, plan, timing=False))
    assert plain == pair_labels(list(range(len(times))), 1.0) and plain[0] == "<0.5 seconds>"


def test_plain_server_gets_at_most_32_frames_and_counts_the_plan(vllm_server, tmp_path):
    env = private_env(tmp_path / "user")
    endpoint = ("--base-url", vllm_server.base_url, "--model", vllm_server.model)
    text_only = answer(env, "ask", PROMPT, *endpoint)["usage"]["prompt_tokens"]
    clip = write_clip(tmp_path / "clip.mp4", frames=400, fps=10, size=(160, 120))  # 40 s: 80 frames at 2 fps
    result = answer(env, "video", str(clip), PROMPT, *endpoint)
    plan = result["plan"]
    [item] = plan["items"]
    assert item["details"]["frames"] == 32 and any("at most 32 frames" in note for note in item["notes"])
    assert "media_io_kwargs" not in plan["request"] and "inserted_text" not in plan
    assert result["usage"]["prompt_tokens"] - text_only == item["visual_tokens"] + 2


def test_qwen25_reads_the_pair_interval_from_the_timing(tmp_path):
    """What the timing drives in Qwen2.5-VL (the processor vLLM calls): seconds per frame pair."""
    from mmcli.settings import GenerationOptions, Quirks
    from mmcli.core.job import Job
    from mmcli.media.item import MediaItem
    from mmcli.core.wire import build_request
    from mmcli.families import FAMILIES

    paths = tier_paths()
    times = [30.0 + 0.5 * i for i in range(8)]
    item = MediaItem(source="clip", kind="video", mime="video/jpeg", transport="frames", frames=[b""] * 8,
                     times=times, details={"video_fps": 10.0})
    job = Job(content=[item], prompt=PROMPT, model="m", family=FAMILIES["qwen2.5-vl"],
              generation=GenerationOptions(stream=False))
    timing = build_request(job, Quirks(frame_limit=None, media_io_kwargs=True))["media_io_kwargs"]["video"]
    script = (
        "import json, sys, numpy as np\n"
        "from transformers import AutoProcessor\n"
        "from transformers.video_utils import VideoMetadata\n"
        "timing = json.loads(sys.argv[2])\n"
        "meta = VideoMetadata(**{k: v for k, v in timing.items() if k != 'num_frames'})\n"
        "frames = np.zeros((len(timing['frames_indices']), 56, 56, 3), np.uint8)\n"
        "out = AutoProcessor.from_pretrained(sys.argv[1])(text='<|vision_start|><|video_pad|><|vision_end|>',\n"
        "    videos=[frames], video_metadata=[meta], do_sample_frames=False)\n"
        "print(json.dumps(out['second_per_grid_ts']))\n")
    run = subprocess.run([str(paths.python), "-c", script, str(paths.models["qwen2.5-vl"]), json.dumps(timing)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == pytest.approx([1.0])  # a pair of frames 0.5 s apart
