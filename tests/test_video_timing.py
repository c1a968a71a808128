"""The timing of a frame list: what requests tell vLLM (media_io_kwargs.video) and the frame labels the plan
expects Qwen3-VL's processor to write, for servers mmcli started and for other endpoints."""

from __future__ import annotations

import json
import os

import pytest

from mmcli.settings import GenerationOptions, Quirks
from mmcli.core.job import Job, Text
from mmcli.media.item import MediaItem
from mmcli.core.wire import build_request, inserted_text, pair_labels
from mmcli.families import FAMILIES
from mmcli.server.state import ServerState, ensure_state_dir, save_state
from tests.test_video_fixtures import write_clip

STARTED_BY_MMCLI = Quirks(frame_limit=None, media_io_kwargs=True)
PLAIN = Quirks()


def frame_list(times: list[float], video_fps=25.0) -> MediaItem:
    return MediaItem(source="clip.mp4", kind="video", mime="video/jpeg", transport="frames",
                     frames=[b"\xff\xd8jpeg"] * len(times), times=times,
                     details={"video_fps": video_fps, "transport": "frames"})


def job(*items: MediaItem, family: str = "qwen3-vl") -> Job:
    return Job(content=list(items), prompt="what happens?", model="m", family=FAMILIES[family],
               generation=GenerationOptions(stream=False))


def vllm_labels(indices: list[int], fps: float) -> list[str]:
    """vLLM 0.32's Qwen3-VL labels, written out as its _calculate_timestamps and get_video_repl do."""
    if len(indices) % 2:
        indices = indices + [indices[-1]]
    stamps = [i / fps for i in indices]
    return [f"<{(stamps[i] + stamps[i + 1]) / 2:.1f} seconds>" for i in range(0, len(stamps), 2)]


def test_a_server_mmcli_started_gets_the_frames_real_timing():
    times = [30.0 + 0.5 * i for i in range(8)]  # 2 fps from 0:30 of a 25 fps source
    request = build_request(job(frame_list(times)), STARTED_BY_MMCLI)
    timing = request["media_io_kwargs"]["video"]
    assert timing["num_frames"] == -1  # or a request's fps makes vLLM fall back to 32 frames
    assert timing["fps"] == 25.0
    assert timing["frames_indices"] == [750, 762, 775, 788, 800, 812, 825, 838]  # source frame numbers
    # Qwen2.5-VL's sampled rate (frames / total x fps) is the real 2 fps, so a pair spans 1 s of positions
    assert len(times) / timing["total_num_frames"] * timing["fps"] == pytest.approx(2.0)
    assert timing["duration"] == pytest.approx(timing["total_num_frames"] / timing["fps"])
    assert all(isinstance(i, int) for i in timing["frames_indices"])  # vLLM refuses anything else
    assert json.loads(json.dumps(request)) == request


def test_qwen3_labels_come_out_in_seconds_of_the_source():
    times = [30.0 + 0.5 * i for i in range(8)]
    the_job = job(frame_list(times))
    timing = build_request(the_job, STARTED_BY_MMCLI)["media_io_kwargs"]["video"]
    labels = inserted_text(the_job, STARTED_BY_MMCLI)
    assert labels == vllm_labels(timing["frames_indices"], timing["fps"])
    assert labels == ["<30.2 seconds>", "<31.3 seconds>", "<32.2 seconds>", "<33.3 seconds>"]  # to a source frame


def test_other_endpoints_get_no_timing_and_the_plan_expects_vllms_one_fps_labels():
    the_job = job(frame_list([30.0 + 0.5 * i for i in range(8)]))
    request = build_request(the_job, PLAIN)
    assert "media_io_kwargs" not in request  # refused with a 400 unless the server trusts request kwargs
    assert inserted_text(the_job, PLAIN) == ["<0.5 seconds>", "<2.5 seconds>", "<4.5 seconds>", "<6.5 seconds>"]


def test_only_qwen3_gets_labels_but_every_family_gets_the_timing():
    item = frame_list([0.0, 0.5, 1.0, 1.5])
    for family in ("qwen2-vl", "qwen2.5-vl"):
        assert inserted_text(job(item, family=family), STARTED_BY_MMCLI) == []
        assert build_request(job(item, family=family), STARTED_BY_MMCLI)["media_io_kwargs"]["video"]["fps"] == 25.0


def test_two_frame_lists_share_one_media_io_kwargs_so_none_is_sent():
    first, second = frame_list([0.0, 0.5, 1.0, 1.5]), frame_list([10.0, 11.0])
    the_job = job(first, Text("and"), second)
    assert "media_io_kwargs" not in build_request(the_job, STARTED_BY_MMCLI)
    assert inserted_text(the_job, STARTED_BY_MMCLI) == ["<0.5 seconds>", "<2.5 seconds>", "<0.5 seconds>"]


def test_a_source_without_a_frame_rate_is_numbered_in_milliseconds():
    times = [0.0, 0.37, 1.01, 1.4]
    the_job = job(frame_list(times, video_fps=None))
    timing = build_request(the_job, STARTED_BY_MMCLI)["media_io_kwargs"]["video"]
    assert timing["fps"] == 1000.0 and timing["frames_indices"] == [0, 370, 1010, 1400]
    assert timing["total_num_frames"] >= len(times)
    assert inserted_text(the_job, STARTED_BY_MMCLI) == ["<0.2 seconds>", "<1.2 seconds>"]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_pair_labels_follow_vllm_for_odd_counts(count):
    indices = [3 * i + 1 for i in range(count)]
    assert pair_labels(indices, 3.0) == vllm_labels(indices, 3.0)
    assert len(pair_labels(indices, 3.0)) == (count + 1) // 2


def record_mmcli_server(env: dict, base_url: str) -> None:
    """A server record as `mmcli serve` writes it (this process stands in for vLLM's)."""
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    state = ServerState(pid=os.getpid(), proc_start=None, started=0.0, model="qwen3-vl-tiny", source="s",
                        family="qwen3-vl", host="127.0.0.1", port=port, base_url=base_url,
                        root_url=base_url.removesuffix("/v1"), log="server.log", key_file=None, detached=True,
                        ready=True, frame_limit=None, request_mm_kwargs=True)
    save_state(ensure_state_dir(env), state)


def test_cli_sends_the_timing_of_a_clip_from_30_s_to_the_server_mmcli_started(mmcli, server, clean_env, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=400, fps=10, size=(160, 120))
    record_mmcli_server(clean_env, server.base_url)
    run = mmcli("video", clip, "--start", "30", "--end", "34", "--base-url", server.base_url, "--json")
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)["plan"]
    sent = server.chat_requests()[-1].json
    timing = sent["media_io_kwargs"]["video"]
    assert timing == plan["request"]["media_io_kwargs"]["video"]
    assert timing["fps"] == 10.0 and timing["frames_indices"][0] == 300 and timing["frames_indices"][-1] <= 340
    assert plan["family"] == "qwen3-vl"
    assert plan["inserted_text"] == vllm_labels(timing["frames_indices"], timing["fps"])
    assert plan["inserted_text"][0].startswith("<30.")


def test_cli_to_a_plain_endpoint_sends_no_timing_and_caps_a_long_clip_at_32(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=400, fps=10, size=(160, 120))
    run = mmcli("video", clip, "--base-url", server.base_url, "-m", "qwen3-vl-test", "--json")
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)["plan"]
    assert "media_io_kwargs" not in server.chat_requests()[-1].json
    [item] = plan["items"]
    assert item["details"]["frames"] == 32 and any("at most 32 frames" in n for n in item["notes"])
    assert plan["inserted_text"] == vllm_labels(list(range(32)), 1.0)


def test_the_cap_note_is_left_out_when_fewer_frames_were_wanted(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=100, fps=10, size=(160, 120))
    run = mmcli("video", clip, "--base-url", server.base_url, "-m", "qwen2.5-vl-test", "--json")
    assert run.code == 0, run.stderr
    [item] = json.loads(run.stdout)["plan"]["items"]
    assert item["details"]["frames"] == 20 and not any("at most 32" in n for n in item["notes"])
    assert "inserted_text" not in json.loads(run.stdout)["plan"]


@pytest.mark.parametrize("quirks", [STARTED_BY_MMCLI, PLAIN], ids=["timed", "plain"])
def test_the_request_size_is_counted_exactly_without_encoding_the_media(quirks):
    from mmcli.core.wire import job_request_size, request_size

    frames = frame_list([0.0, 0.5, 1.0, 1.5])
    images = MediaItem(source="clip.mp4", kind="video", mime="image/jpeg", transport="images",
                       frames=[b"\xff\xd8one", b"\xff\xd8two!"], times=[0.0, 2.5])
    photo = MediaItem(source="a.png", kind="image", mime="image/png", data=bytes(range(256)) * 3)
    url = MediaItem(source="u", kind="image", mime="image/jpeg", transport="url", url="https://x/y.jpg")
    whole = Job(content=[Text("Page 1"), photo, frames, images, url], prompt="q", model="m",
                family=FAMILIES["qwen3-vl"], generation=GenerationOptions(stream=True, max_tokens=5))
    assert job_request_size(whole, quirks) == request_size(build_request(whole, quirks))
