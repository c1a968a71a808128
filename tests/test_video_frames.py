"""The pure sampling math: frame counts as qwen-vl-utils computes them, ranges, sizes, tokens, the shrink ladder."""

from __future__ import annotations

import math

import pytest

from mmcli.media import frames as fr
from mmcli.media.resize import smart_resize
from mmcli.families import FAMILIES

QWEN2 = FAMILIES["qwen2.5-vl"]


# (total_frames, video_fps, keyword options) -> what qwen-vl-utils' smart_nframes returns.
SMART_NFRAMES = [
    ((795, 25.0, {}), 62),  # the 768x576 sample clip: 31.8 s at 2 fps = 63.6, floored to even
    ((50, 25.0, {}), 4),
    ((10, 25.0, {}), 4),  # 0.4 s: raised to the 4-frame minimum
    ((3, 25.0, {}), 2),  # fewer frames than the minimum: as many as exist, floored to even
    ((4000, 25.0, {}), 320),  # 160 s
    ((100000, 25.0, {}), 768),  # over an hour: capped at 768
    ((300, 29.97, {}), 20),
    ((61, 30.0, {}), 4),
    ((795, 25.0, {"fps": 0.5}), 14),
    ((795, 25.0, {"fps": 0.1}), 4),
    ((795, 25.0, {"fps": 0.1, "min_frames": 7}), 8),  # min rounded up to even
    ((795, 25.0, {"max_frames": 31}), 30),  # max rounded down to even
    ((795, 25.0, {"nframes": 7}), 8),  # an exact count is rounded half to even: round(3.5) * 2
    ((795, 25.0, {"nframes": 5}), 4),  # round(2.5) * 2
]


@pytest.mark.parametrize(("args", "expected"), SMART_NFRAMES)
def test_smart_nframes_matches_qwen_vl_utils(args, expected):
    total, fps, options = args
    assert fr.smart_nframes(total, fps, **options) == expected


def test_smart_nframes_refuses_a_single_frame():
    with pytest.raises(ValueError, match="nframes"):
        fr.smart_nframes(1, 25.0)


def test_frame_range_rounds_like_qwen_vl_utils():
    assert fr.frame_range(795, 25.0, None, None) == (0, 794)
    assert fr.frame_range(795, 25.0, 3.0, None) == (75, 794)
    assert fr.frame_range(795, 25.0, 3.01, 10.0) == (76, 250)
    assert fr.frame_range(795, 25.0, None, 99.0) == (0, 794)  # the end is clamped to the video
    with pytest.raises(ValueError):
        fr.frame_range(795, 25.0, 40.0, None)  # starts after the last frame


def test_sample_indices_are_a_rounded_linspace_with_both_ends():
    assert fr.sample_indices(0, 49, 4) == [0, 16, 33, 49]
    assert fr.sample_indices(0, 10, 5) == [0, 2, 5, 8, 10]  # 2.5 -> 2 and 7.5 -> 8, as torch.round does
    indices = fr.sample_indices(75, 794, 62)
    assert indices[0] == 75 and indices[-1] == 794 and len(set(indices)) == 62


def test_choose_frames_gives_times_on_the_frame_grid():
    sampling = fr.choose_frames(50, 25.0, fr.SamplingOptions())
    assert sampling.times == pytest.approx([0.0, 0.64, 1.32, 1.96])
    assert sampling.tolerance == pytest.approx(0.02)
    with pytest.raises(ValueError, match="more than"):
        fr.choose_frames(50, 25.0, fr.SamplingOptions(frames=60))


def test_choose_from_times_spreads_frames_evenly_in_time_not_in_index():
    # 40 frames 40 ms apart, then 20 frames 200 ms apart: half the frames in the first 1.6 s of 5.4 s.
    times = [0.04 * i for i in range(40)] + [1.6 + 0.2 * j for j in range(20)]
    sampling = fr.choose_from_times(times, fr.SamplingOptions())
    gaps = [b - a for a, b in zip(sampling.times, sampling.times[1:])]
    assert sampling.count == 10 and sampling.times[0] == 0 and sampling.times[-1] == pytest.approx(5.4)
    assert max(gaps) < 0.75 and min(gaps) > 0.45  # an index-based pick would bunch them up early
    assert set(sampling.times) <= set(times)
    part = fr.choose_from_times(times, fr.SamplingOptions(start=2.0, end=4.0))
    assert part.times[0] == pytest.approx(2.0) and part.times[-1] == pytest.approx(4.0)


def test_frame_pixels_share_the_total_budget():
    qwen = dict(min_pixels=QWEN2.video_min_pixels, max_pixels=QWEN2.video_max_pixels,
                total_pixels=QWEN2.video_total_pixels)
    assert QWEN2.video_total_pixels == 90316800
    assert fr.frame_pixel_limits(62, **qwen) == (100352, 602112)  # the per-frame cap binds
    assert fr.frame_pixel_limits(768, **qwen) == (100352, 235200)  # 90316800 / 768 * 2
    floor = fr.frame_pixel_limits(62, **{**qwen, "total_pixels": 1_000_000})
    assert floor == (100352, int(100352 * 1.05))  # never below 1.05x the minimum
    assert fr.frame_pixel_limits(62, **qwen, user_max=200_000) == (100352, 200_000)
    with pytest.raises(ValueError):
        fr.frame_pixel_limits(62, **qwen, user_max=50_000)


def test_frame_size_and_tokens():
    assert fr.frame_size(576, 768, 28, 100352, 602112) == (588, 756)
    assert fr.frame_size(1080, 1920, 28, 100352, 602112) == (560, 1008) == smart_resize(1080, 1920, 28, 100352,
                                                                                          602112)
    assert fr.frame_size(1080, 1920, None, 100352, 602112)[0] * fr.frame_size(1080, 1920, None, 100352,
                                                                              602112)[1] <= 602112
    assert fr.visual_tokens(62, 588, 756, 28, "frames") == 31 * 21 * 27  # frame pairs share tokens
    assert fr.visual_tokens(62, 588, 756, 28, "images") == 62 * 21 * 27
    assert fr.visual_tokens(62, 588, 756, None, "images") is None
    assert fr.visual_tokens(62, 588, 756, 28, "file") is None


def test_fit_ladder_lowers_quality_then_size_then_count():
    ladder = fr.fit_ladder(588, 756, 62, factor=28, min_pixels=100352, min_count=4, even=True)
    qualities = [s.quality for s in ladder]
    assert qualities[:3] == [80, 70, 60] and set(qualities[3:]) == {60}
    sizes = [s.height * s.width for s in ladder]
    counts = [s.count for s in ladder]
    first_count_step = next(i for i, c in enumerate(counts) if c < 62)
    assert all(a > b for a, b in zip(sizes[2:first_count_step], sizes[3:first_count_step]))
    assert all(s.height % 28 == 0 and s.width % 28 == 0 and s.height * s.width >= 100352 for s in ladder)
    assert len(set(sizes[first_count_step - 1:])) == 1  # the count shrinks at the smallest size
    assert all(c % 2 == 0 for c in counts) and counts[-1] == 4
    assert all(a > b for a, b in zip(counts[first_count_step - 1:], counts[first_count_step:]))


def test_spread_keeps_both_ends():
    assert fr.spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert fr.spread([1, 2], 5) == [1, 2]


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90.5", 90.5), ("1:30", 90.0), ("01:30", 90.0),
                                               ("0:01:30.5", 90.5), ("1:02:03.5", 3723.5), ("0", 0.0)])
def test_parse_time(text, seconds):
    assert fr.parse_time(text) == seconds


@pytest.mark.parametrize("text", ["1:75", "1:60:00", "-5", "abc", "", "1:2:3:4", "nan", "inf"])
def test_parse_time_refuses(text):
    with pytest.raises(ValueError):
        fr.parse_time(text)


def test_format_time():
    assert fr.format_time(90) == "1:30.0"
    assert fr.format_time(3723.5) == "1:02:03.5"
    assert fr.format_time(0.04) == "0:00.0"
    assert math.isclose(fr.parse_time(fr.format_time(754.3)), 754.3)


def test_option_combinations_that_cannot_work():
    assert fr.SamplingOptions().problems() == []
    assert "--frames" in fr.SamplingOptions(frames=8, fps=1.0).problems()[0]
    assert "--min-frames" in fr.SamplingOptions(min_frames=10, max_frames=6).problems()[0]
    assert "--start" in fr.SamplingOptions(start=20.0, end=10.0).problems()[0]
    assert "--as" in fr.SamplingOptions(transport="gif").problems()[0]


def test_container_claims_are_checked_for_plausibility():
    assert fr.plausible(25.0, 795)
    assert not fr.plausible(0.0, 795)
    assert not fr.plausible(25.0, -1)
    assert not fr.plausible(float("nan"), 10)
    assert not fr.plausible(25.0, 9.2e18)  # what some WebM files report
