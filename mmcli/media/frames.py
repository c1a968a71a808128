"""Pure video sampling math: how many frames, which ones, at what size, and how to shrink to a byte limit.

The counts follow qwen-vl-utils (`smart_nframes`, `calculate_video_frame_range`, the per-frame pixel
share of a total budget), so a Qwen model sees what its own preprocessing would have produced.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Optional

from ..limits import DEFAULT_MAX_REQUEST_MB
from .resize import ceil_by_factor, floor_by_factor, round_by_factor, smart_resize, within_aspect_limit

FRAME_FACTOR = 2  # Qwen merges frames in pairs (temporal patch size 2)
DEFAULT_FPS = 2.0
MIN_FRAMES = 4
MAX_FRAMES = 768
TRANSPORTS = ("frames", "images", "file")
MB = 1_000_000
# Budgets for frames sent to models without a patch grid: the Qwen2 video defaults, unrounded.
GENERIC_VIDEO_MIN_PIXELS = 128 * 28 * 28
GENERIC_VIDEO_MAX_PIXELS = 768 * 28 * 28
GENERIC_VIDEO_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)
# Container values outside these bounds are treated as missing, not believed.
MAX_PLAUSIBLE_FPS = 1000.0
MAX_PLAUSIBLE_SECONDS = 48 * 3600.0
# The shrink ladder used to fit a request-size limit: qualities first, then frame area, then count.
FIT_QUALITIES = (80, 70, 60)
FIT_AREA_STEP = 0.8
FIT_COUNT_STEP = 0.8


@dataclass(frozen=True)
class SamplingOptions:
    """The video options of a command; None means the default (or, for the transport, per endpoint)."""

    fps: Optional[float] = None
    min_frames: Optional[int] = None
    max_frames: Optional[int] = None
    frames: Optional[int] = None
    start: Optional[float] = None
    end: Optional[float] = None
    total_pixels: Optional[int] = None
    max_request_mb: float = DEFAULT_MAX_REQUEST_MB
    transport: Optional[str] = None
    frame_limit: Optional[int] = None  # frames the endpoint keeps of a frame list, when the user says

    def problems(self) -> list[str]:
        """What is wrong with this combination of options (empty when nothing is)."""
        found = []
        if self.frames is not None and (self.fps is not None or self.min_frames or self.max_frames):
            found.append("--frames sets the count exactly; it cannot be combined with --fps, --min-frames or --max-frames")
        if self.min_frames and self.max_frames and ceil_by_factor(self.min_frames, FRAME_FACTOR) > self.max_frames:
            found.append(f"--min-frames {self.min_frames} is above --max-frames {self.max_frames}")
        if self.start is not None and self.end is not None and self.start >= self.end:
            found.append(f"--start {format_time(self.start)} is not before --end {format_time(self.end)}")
        if self.transport is not None and self.transport not in TRANSPORTS:
            found.append(f"--as must be one of {', '.join(TRANSPORTS)}")
        return found

    @property
    def max_request_bytes(self) -> int:
        """The request-size limit in bytes."""
        return int(self.max_request_mb * MB)


def plausible(fps: float, frame_count: float) -> bool:
    """Whether container-reported fps and frame count are believable enough to plan with."""
    if not (math.isfinite(fps) and math.isfinite(frame_count)):
        return False
    if not 0 < fps <= MAX_PLAUSIBLE_FPS or frame_count < 1:
        return False
    return frame_count / fps <= MAX_PLAUSIBLE_SECONDS


def smart_nframes(total_frames: int, video_fps: float, *, fps: Optional[float] = None,
                  min_frames: Optional[int] = None, max_frames: Optional[int] = None,
                  nframes: Optional[int] = None) -> int:
    """How many frames to sample (qwen-vl-utils' smart_nframes); ValueError when none fit."""
    if nframes is not None:
        count = round_by_factor(nframes, FRAME_FACTOR)
    else:
        fps = DEFAULT_FPS if fps is None else fps
        low = ceil_by_factor(MIN_FRAMES if min_frames is None else min_frames, FRAME_FACTOR)
        high = floor_by_factor(min(MAX_FRAMES, total_frames) if max_frames is None else max_frames, FRAME_FACTOR)
        wanted = total_frames / video_fps * fps
        count = floor_by_factor(min(min(max(wanted, low), high), total_frames), FRAME_FACTOR)
    if not FRAME_FACTOR <= count <= total_frames:
        raise ValueError(f"nframes should be in [{FRAME_FACTOR}, {total_frames}], got {count}")
    return count


def frame_range(total_frames: int, video_fps: float, start: Optional[float],
                end: Optional[float]) -> tuple[int, int]:
    """First and last frame index inside [start, end] seconds (qwen-vl-utils' rounding); ValueError if empty."""
    if start is None and end is None:
        return 0, total_frames - 1
    duration = total_frames / video_fps
    first = math.ceil(max(0.0, min(start, duration)) * video_fps) if start is not None else 0
    last = total_frames - 1
    if end is not None:
        last = min(math.floor(max(0.0, min(end, duration)) * video_fps), total_frames - 1)
    if first >= last:
        raise ValueError(f"no frames between {format_time(start or 0)} and "
                         f"{format_time(end if end is not None else duration)}")
    return first, last


def sample_indices(first: int, last: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over [first, last], ends included (linspace, rounded)."""
    if count == 1:
        return [first]
    step = (last - first) / (count - 1)
    return [round(first + i * step) for i in range(count)]


@dataclass(frozen=True)
class Sampling:
    """Which frames to take: the times to take them at, and how early a frame may be to count."""

    times: list[float]
    tolerance: float  # a frame at time t serves a target at t + tolerance or earlier

    @property
    def count(self) -> int:
        """Number of frames sampled."""
        return len(self.times)


def choose_frames(total_frames: int, video_fps: float, opts: SamplingOptions) -> Sampling:
    """Frames for a video planned from its container's frame count and rate (qwen-vl-utils' indices)."""
    first, last = frame_range(total_frames, video_fps, opts.start, opts.end)
    count = _count(last - first + 1, video_fps, opts)
    indices = sample_indices(first, last, count)
    return Sampling([i / video_fps for i in indices], 0.5 / video_fps)


def choose_from_times(times: list[float], opts: SamplingOptions) -> Sampling:
    """Frames for a video whose every frame time is known: evenly spaced in time, nearest real frame each."""
    low = 0 if opts.start is None else bisect.bisect_left(times, opts.start - _EPSILON)
    high = len(times) - 1 if opts.end is None else bisect.bisect_right(times, opts.end + _EPSILON) - 1
    if high - low < 1:
        raise ValueError(f"fewer than two frames between {format_time(opts.start or 0)} and "
                         f"{format_time(times[-1] if opts.end is None else opts.end)}")
    span = times[high] - times[low]
    average_fps = (high - low) / span if span > 0 else DEFAULT_FPS
    count = _count(high - low + 1, average_fps, opts)
    chosen = [_nearest(times, low, high, times[low] + i * span / (count - 1)) for i in range(count)]
    return Sampling([times[i] for i in chosen], _EPSILON)


_EPSILON = 1e-4


def _count(in_range: int, video_fps: float, opts: SamplingOptions) -> int:
    if opts.frames is None:
        return smart_nframes(in_range, video_fps, fps=opts.fps, min_frames=opts.min_frames,
                             max_frames=opts.max_frames)
    if opts.frames > in_range:
        raise ValueError(f"--frames {opts.frames} is more than the {in_range} frames in the chosen range")
    return opts.frames


def _nearest(times: list[float], low: int, high: int, target: float) -> int:
    i = min(max(bisect.bisect_left(times, target, low, high + 1), low), high)
    if i > low and target - times[i - 1] <= times[i] - target:
        return i - 1
    return i


def frame_pixel_limits(count: int, *, min_pixels: int, max_pixels: int, total_pixels: int,
                       user_max: Optional[int] = None) -> tuple[int, int]:
    """(min, max) pixels per frame: an even share of the total budget within the frame bounds."""
    limit = max(min(max_pixels, total_pixels / count * FRAME_FACTOR), int(min_pixels * 1.05))
    if user_max is not None:
        limit = min(user_max, limit)
    if limit < min_pixels:
        raise ValueError(f"the most pixels per frame ({int(limit)}) is below the least ({min_pixels})")
    return min_pixels, limit


def frame_size(height: int, width: int, factor: Optional[int], min_pixels: int, max_pixels: float
               ) -> tuple[int, int]:
    """(height, width) of each sent frame: on the model's grid, or just scaled down for grid-less models."""
    if factor is not None:
        return within_aspect_limit(*smart_resize(height, width, factor, min_pixels, max_pixels), factor)
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def visual_tokens(count: int, height: int, width: int, factor: Optional[int], transport: str) -> Optional[int]:
    """Visual tokens the frames cost: pairs of frames share tokens as a video, not as separate images."""
    if factor is None or transport == "file":
        return None
    grid = (height // factor) * (width // factor)
    if transport == "frames":
        return math.ceil(count / FRAME_FACTOR) * grid
    return count * grid


@dataclass(frozen=True)
class FitStep:
    """One rung of the shrink ladder: JPEG quality, frame size and frame count."""

    quality: int
    height: int
    width: int
    count: int


def fit_ladder(height: int, width: int, count: int, *, factor: Optional[int], min_pixels: int,
               min_count: int, even: bool) -> list[FitStep]:
    """Ever smaller settings to try, in order: lower quality, then smaller frames, then fewer frames."""
    steps = [FitStep(q, height, width, count) for q in FIT_QUALITIES]
    quality = FIT_QUALITIES[-1]
    h, w = height, width
    area = float(height * width)
    while True:
        area *= FIT_AREA_STEP
        if area < min_pixels:
            break
        smaller = frame_size(height, width, factor, min_pixels, area)
        if smaller[0] * smaller[1] < h * w:
            h, w = smaller
            steps.append(FitStep(quality, h, w, count))
    n = count
    while n > min_count:
        n = max(min_count, int(n * FIT_COUNT_STEP))
        if even:
            n = max(min_count, n - n % FRAME_FACTOR)
        steps.append(FitStep(quality, h, w, n))
    return steps


def spread(items: list, count: int) -> list:
    """`count` of `items`, evenly spread, first and last kept."""
    if count >= len(items):
        return list(items)
    return [items[i] for i in sample_indices(0, len(items) - 1, count)]


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_time(text: str) -> float:
    """Seconds from '90', '90.5', '1:30' or '1:02:03.5'; ValueError for anything else."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        match = _CLOCK.match(value)
        if not match:
            raise ValueError("it is neither a number of seconds nor [h:]mm:ss") from None
        hours, minutes, secs = int(match.group(1) or 0), int(match.group(2)), float(match.group(3))
        if secs >= 60 or (match.group(1) is not None and minutes >= 60):
            raise ValueError("minutes and seconds must be below 60") from None
        seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a time must be zero or more seconds")
    return seconds


def format_time(seconds: float) -> str:
    """'m:ss.s' (or 'h:mm:ss.s') for a number of seconds."""
    tenths = round(seconds * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    text = f"{minutes:02d}:{rest // 10:02d}.{rest % 10}" if hours else f"{minutes}:{rest // 10:02d}.{rest % 10}"
    return f"{hours}:{text}" if hours else text
