"""The default video on a server `mmcli serve` started: vLLM's encoder cache is sized for the largest video
the client plans, the limit is recorded, and clients plan within it; a server mmcli did not size refuses
the same video with a 400 that mmcli turns into a clear error.

Each test starts its own vLLM (CPU build, tiny Qwen2-VL, 32,768 tokens of context), one after the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tier

pytest.importorskip("mmcli")
pytest.importorskip("cv2")

from test_vllm_tier_serve import env, mmcli, paths  # noqa: E402,F401 - the same user, server tools and tier
from tests.test_video_fixtures import write_clip  # noqa: E402

CONTEXT = 32768
OLD_LIMIT = 8960  # vLLM's own encoder cache for this model: a 14-frame video at a 1280-token image size


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.mp4", frames=150, fps=25, size=(640, 360), texture=True)


def serve(paths, env, *extra: str) -> dict:
    port = tier.free_port()
    run = mmcli(env, "serve", str(paths.model_dir), "--device", "cpu", "--detach", "--port", str(port),
                "--max-model-len", str(CONTEXT), "--vllm-python", str(paths.python), "--cpu-kv-cache-gib", "1",
                "--startup-timeout", "900", *extra, timeout=1000)
    state_file = Path(env["XDG_STATE_HOME"]) / "mmcli" / "server.json"
    assert run.returncode == 0, run.stderr
    return json.loads(state_file.read_text())


def test_sixty_four_frames_at_the_default_budget_on_a_server_mmcli_started(paths, env, clip):
    state = serve(paths, env)
    try:
        assert state["video_item_tokens"] == CONTEXT
        run = mmcli(env, "video", str(clip), "what happens?", "--frames", "64", "--max-tokens", "1",
                    "--temperature", "0", "--json", timeout=900)
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout)
        [item] = answer["plan"]["items"]
        assert item["details"]["frames"] == 64
        assert OLD_LIMIT < item["visual_tokens"] <= CONTEXT  # the default budget, beyond vLLM's own cache
        assert answer["verified"] is not False

        big = write_clip(clip.with_name("big.mp4"), frames=130, fps=25, size=(1280, 720), texture=True)
        too_big = mmcli(env, "video", str(big), "q", "--frames", "128", "--total-pixels", str(200000 * 28 * 28),
                        "--max-request-mb", "500", "--max-tokens", "1", timeout=900)
        assert too_big.returncode == 2, too_big.stderr
        assert "larger than the server takes in one item" in too_big.stderr
        assert f"--total-pixels {CONTEXT * 28 * 28}" in too_big.stderr  # the budget that fits
    finally:
        assert mmcli(env, "serve", "stop", timeout=120).returncode == 0


def test_a_server_sized_by_its_user_is_planned_within_and_an_unsized_one_gets_a_clear_400(paths, env, clip,
                                                                                          tmp_path):
    state = serve(paths, env, "--", "--max-num-batched-tokens", str(OLD_LIMIT))
    try:
        assert state["video_item_tokens"] == OLD_LIMIT
        run = mmcli(env, "video", str(clip), "q", "--frames", "64", "--max-tokens", "1", "--json", timeout=900)
        assert run.returncode == 0, run.stderr
        [item] = json.loads(run.stdout)["plan"]["items"]
        assert item["details"]["frames"] == 64 and item["visual_tokens"] <= OLD_LIMIT  # planned within the cache

        # A client that does not know the server (its own state folder) plans the default video and sends it.
        stranger = dict(env, XDG_STATE_HOME=str(tmp_path / "other-state"))
        run = mmcli(stranger, "video", str(clip), "q", "--frames", "64", "--max-tokens", "1",
                    "--frame-limit", "64", "--base-url", state["base_url"], "--model", state["model"],
                    "--family", "qwen2-vl", timeout=900)
        assert run.returncode in (4, 5), run.stderr  # vLLM sends it as a 400, or as an error event mid-stream
        assert "Traceback" not in run.stderr
        assert f"the server takes at most {OLD_LIMIT} visual tokens in one image or video" in run.stderr
        assert "--max-num-batched-tokens" in run.stderr
    finally:
        assert mmcli(env, "serve", "stop", timeout=120).returncode == 0
