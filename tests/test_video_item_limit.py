"""The default video on a server `mmcli serve` starts: the server's encoder cache is sized for it, the limit
is recorded, clients plan within it or refuse before upload (exit 2), and vLLM's own 400 for an item over
its encoder cache gets a hint."""

from __future__ import annotations

import json
import os

import pytest

from mmcli.families import FAMILIES
from mmcli.server.state import ServerState, ensure_state_dir, save_state
from mmcli.server.videocache import client_video_tokens, given_batched_tokens
from tests.conftest import assert_clean_error
from tests.support.scripted_server import Events, Status, vllm_error
from tests.test_serve_command import command, flag
from tests.test_video_fixtures import write_clip

VLLM_400 = ("The decoder prompt contains a(n) video item with 18144 embedding tokens, which exceeds the "
            "pre-allocated encoder cache size 8960. Please reduce the input size or increase the encoder cache "
            "size by setting --limit-mm-per-prompt at startup.")


def test_serve_sizes_the_encoder_cache_for_the_clients_default_video():
    cmd = command(max_model_len=32768)
    assert flag(cmd.argv, "--max-num-batched-tokens") == "32768" and cmd.video_item_tokens == 32768
    # The client's default total budget is the ceiling when the context is longer.
    assert client_video_tokens(FAMILIES["qwen2.5-vl"]) == 115200
    assert command(max_model_len=200000).video_item_tokens == 115200


def test_a_users_own_batched_tokens_is_what_is_recorded():
    for extra in (("--max-num-batched-tokens", "8192"), ("--max_num_batched_tokens=8192",)):
        cmd = command(max_model_len=32768, extra_args=extra)
        assert cmd.video_item_tokens == 8192
        assert cmd.argv.count("--max-num-batched-tokens") == (1 if extra[0].endswith("tokens") else 0)
    assert given_batched_tokens(("--max-num-seqs", "4")) is None


def test_no_limit_for_generic_or_embedding_servers():
    generic = command("org/some-model", max_model_len=32768)
    assert generic.video_item_tokens is None and "--max-num-batched-tokens" not in generic.argv
    embed = command(max_model_len=32768, embed=True)
    assert embed.video_item_tokens is None and "--max-num-batched-tokens" not in embed.argv


def record_server(env: dict, base_url: str, limit: int) -> None:
    """A server record as `mmcli serve` writes it (this process stands in for vLLM's)."""
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    state = ServerState(pid=os.getpid(), proc_start=None, started=0.0, model="qwen2-vl-tiny", source="s",
                        family="qwen2-vl", host="127.0.0.1", port=port, base_url=base_url,
                        root_url=base_url.removesuffix("/v1"), log="server.log", key_file=None, detached=True,
                        ready=True, frame_limit=None, request_mm_kwargs=False, video_item_tokens=limit)
    save_state(ensure_state_dir(env), state)


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.mp4", frames=100, fps=25, size=(640, 360))


def test_the_client_plans_the_default_video_within_the_recorded_limit(mmcli, server, clean_env, clip):
    record_server(clean_env, server.base_url, 8960)
    run = mmcli("video", clip, "q", "--frames", "64", "--base-url", server.base_url, "--dry-run", "--json")
    assert run.code == 0, run.stderr
    [item] = json.loads(run.stdout)["items"]
    assert item["details"]["frames"] == 64 and 8000 < item["visual_tokens"] <= 8960
    unlimited = mmcli("video", clip, "q", "--frames", "64", "--frame-limit", "64", "--base-url", server.base_url,
                      "-m", "qwen2-vl-tiny", "--dry-run", "--json",
                      env={"XDG_STATE_HOME": clean_env["XDG_STATE_HOME"] + "-none"})
    assert unlimited.code == 0, unlimited.stderr
    assert json.loads(unlimited.stdout)["items"][0]["visual_tokens"] > 8960  # what it would send elsewhere


def test_a_video_over_the_limit_is_refused_before_upload_with_the_budget_that_fits(mmcli, server, clean_env,
                                                                                   clip):
    record_server(clean_env, server.base_url, 8960)
    run = mmcli("video", clip, "q", "--frames", "64", "--total-pixels", str(100000 * 28 * 28),
                "--base-url", server.base_url)
    assert_clean_error(run, 2, "larger than the server takes in one item", "over its limit of 8,960", "clip.mp4")
    assert f"--total-pixels {8960 * 28 * 28}" in run.stderr
    assert server.chat_requests() == []  # nothing uploaded


def test_images_as_separate_items_are_not_held_to_the_video_limit(mmcli, server, clean_env, clip):
    record_server(clean_env, server.base_url, 500)
    run = mmcli("video", clip, "q", "--frames", "8", "--as", "images", "--base-url", server.base_url,
                "--dry-run", "--json")
    assert run.code == 0, run.stderr


def test_vllms_encoder_cache_400_gets_a_hint(mmcli, server, clip):
    server.script(Status(400, vllm_error(400, VLLM_400)))
    run = mmcli("video", clip, "q", "--frames", "64", "--frame-limit", "64", "--base-url", server.base_url,
                "-m", "qwen2-vl-test", "--no-stream")
    assert_clean_error(run, 4, "exceeds the pre-allocated encoder cache size 8960")
    assert "the server takes at most 8960 visual tokens in one image or video" in run.stderr
    assert "--max-num-batched-tokens" in run.stderr


def test_the_same_error_sent_mid_stream_gets_the_hint_too(mmcli, server, clip):
    server.script(Events([{"error": {"message": VLLM_400, "code": 400}}]))
    run = mmcli("video", clip, "q", "--frames", "64", "--frame-limit", "64", "--base-url", server.base_url,
                "-m", "qwen2-vl-test")
    assert_clean_error(run, 5, "exceeds the pre-allocated encoder cache size 8960")
    assert "the server takes at most 8960 visual tokens in one image or video" in run.stderr
