"""Planning one video: sampling, a verified decoding pass, fitting the request-size limit, content parts."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, Optional

from ..errors import MediaError, UsageError
from ..families import user_max_pixels
from . import frames as fr
from .item import MediaItem
from .resize import AspectRatioError, ceil_by_factor
from .videodecode import (
    DecodeResult,
    FrameFormat,
    ProgressFn,
    VideoInput,
    decode,
    fetch_frame,
    has_frame_after,
    read_whole,
    reencode,
    scan_times,
)

if TYPE_CHECKING:
    from ..settings import MediaOptions
    from ..families import Family
    from .sources import Source

# (frame sizes, their times, mime, transport) -> bytes those frames take in the request body.
WireSizeFn = Callable[[list[int], list[float], str, str], int]
# (seconds of video to read, title) -> a context giving a function told how far reading has got, or None.
ProgressFactory = Callable[[float, str], ContextManager[Optional[ProgressFn]]]

PROGRESS_FROM = 20.0  # seconds of video; shorter ones decode too fast to need a bar
ESTIMATE_SAMPLES = 6
FIT_MARGIN = 0.97  # aim a little under the limit so one re-encode usually suffices
TAIL_FRAMES = 2.5  # frames past the container's end that are not worth a second pass


@dataclass(frozen=True)
class VideoJob:
    """What a video is planned against: the model family, the options and its share of the request."""

    family: "Family"
    media: "MediaOptions"
    options: fr.SamplingOptions
    transport: str
    budget: int  # bytes this video's content parts may take in the request body
    wire_size: WireSizeFn
    warn: Callable[[str], None]
    progress: Optional[ProgressFactory] = None
    frame_limit: Optional[int] = None  # frames a frame list may hold on this endpoint; None: no limit
    item_tokens: Optional[int] = None  # visual tokens one frame list may take on this endpoint; None: no limit


def default_transport(family: "Family", endpoint_takes_video: bool) -> str:
    """`frames` for families that take video on endpoints that do; `images` otherwise."""
    return "frames" if family.accepts_video and endpoint_takes_video else "images"


def plan_video_url(source: "Source", job: VideoJob) -> MediaItem:
    """A video URL passed through unchanged (--pass-url): the server fetches and samples it."""
    if job.transport == "images":
        raise UsageError("a video URL cannot be sent as images", where=source.label,
                         hint="drop --pass-url so mmcli downloads and samples it, or use --as frames")
    return MediaItem(source=source.label, kind="video", mime=source.sniffed.mime, transport="url",
                     url=source.url or "", notes=["URL sent unchanged; the server fetches it and samples the frames"],
                     details={"transport": "url"})


def plan_video(video: VideoInput, job: VideoJob) -> MediaItem:
    """The prepared item for one opened video; its temporary copy is removed after."""
    try:
        if job.transport == "file":
            return _plan_file(video, job)
        return _plan_frames(*_capped(video, job))
    finally:
        video.discard()


def _capped(video: VideoInput, job: VideoJob) -> tuple[VideoInput, VideoJob, list[str]]:
    """The job with its frame count held to what this endpoint keeps of a frame list, and the note saying so."""
    opts, limit = job.options, job.frame_limit
    if job.transport != "frames" or limit is None:
        return video, job, []
    limit -= limit % fr.FRAME_FACTOR
    if opts.frames is not None:
        if opts.frames <= limit:
            return video, job, []
        raise UsageError(f"--frames {opts.frames} is more than this endpoint keeps of a frame list",
                         f"it keeps the first {limit} frames", where=video.label,
                         hint=f"use --frames {limit} or fewer, or --as images; a server started with "
                              "--media-io-kwargs '{\"video\": {\"num_frames\": -1}}' (mmcli serve does) takes "
                              "more: say so with --frame-limit N or frame_limit in the profile")
    if opts.max_frames is not None and opts.max_frames <= limit:
        return video, job, []
    note = (f"at most {limit} frames: the endpoint keeps only the first {limit} of a frame list "
            "(servers started by mmcli serve keep all; raise with --frame-limit or frame_limit in the profile)")
    return video, replace(job, options=replace(opts, max_frames=limit)), [note]


def _plan_file(video: VideoInput, job: VideoJob) -> MediaItem:
    opts = job.options
    if opts.start is not None or opts.end is not None:
        raise UsageError("--start and --end cannot trim a video sent as a file", where=video.label,
                         hint="use --as frames or --as images to send part of a video")
    if any(v is not None for v in (opts.fps, opts.frames, opts.min_frames, opts.max_frames, opts.total_pixels)):
        job.warn("the server samples a video sent as a file itself; --fps, --frames, --min-frames, "
                 "--max-frames and --total-pixels do not apply")
    overhead = job.wire_size([], [], video.mime, "file")
    data = read_whole(video, (job.budget - overhead) * 3 // 4)
    return MediaItem(source=video.label, kind="video", mime=video.mime, transport="file", data=data,
                     original_width=video.width, original_height=video.height,
                     notes=["the original file; the server samples the frames (vLLM: 32 by default)"],
                     details={"transport": "file", "codec": video.codec, "rotation": video.rotation,
                              "duration": video.declared_duration, "video_fps": video.fps})


def _plan_frames(video: VideoInput, job: VideoJob, cap_notes: list[str]) -> MediaItem:
    frames = job.options.frames
    if job.transport == "frames" and frames is not None and frames % fr.FRAME_FACTOR:
        raise UsageError("--frames must be even for a frame list", f"--frames {frames}: the model takes frames "
                         "in pairs", hint=f"use --frames {frames + 1}, or --as images")
    if job.media.lossless and job.transport == "frames":
        job.warn("--lossless does not apply to a frame list, which is JPEG by definition; sending JPEG frames")
        job = replace(job, media=replace(job.media, lossless=False))
    result, fmt, notes, span = _sample_and_decode(video, job)
    data, times, fmt, fitted = _fit_request(video, job, result.data, result.times, fmt)
    n, transport = len(data), job.transport
    if job.options.max_frames is not None and n < job.options.max_frames:
        cap_notes = []  # the cap did not bite: fewer frames were wanted anyway
    summary = (f"{n} frames {fr.format_time(times[0])}-{fr.format_time(times[-1])} "
               f"at {fmt.width}x{fmt.height}, sent as {transport}")
    mime = "video/jpeg" if transport == "frames" else ("image/png" if fmt.lossless else "image/jpeg")
    opts = job.options
    details = {
        "transport": transport, "frames": n, "timestamps": [round(t, 3) for t in times],
        "fps": None if opts.frames is not None else (opts.fps or fr.DEFAULT_FPS),
        "start": opts.start, "end": opts.end, "duration": span, "video_fps": video.fps,
        "codec": video.codec, "rotation": video.rotation,
        "jpeg_quality": None if fmt.lossless else fmt.quality,
    }
    tokens = fr.visual_tokens(n, fmt.height, fmt.width, job.family.factor, transport)
    _check_item_tokens(job, tokens, video.label)
    return MediaItem(source=video.label, kind="video", mime=mime, transport=transport, frames=data, times=times,
                     original_width=video.width, original_height=video.height, sent_width=fmt.width,
                     sent_height=fmt.height, visual_tokens=tokens,
                     notes=[summary, *cap_notes, *notes, *fitted], details=details)


def _item_total(job: VideoJob, total: int) -> int:
    """The default total pixel budget, held to what the endpoint takes in one frame list: each frame gets
    at most 2/count of the total, so a whole frame list costs at most total/factor^2 tokens."""
    factor = job.family.factor
    if job.transport != "frames" or not job.item_tokens or not factor:
        return total
    return min(total, job.item_tokens * factor * factor)


def _check_item_tokens(job: VideoJob, tokens: Optional[int], label: str) -> None:
    """Refuse, before anything is sent, a frame list the endpoint would refuse as larger than its encoder cache."""
    if job.transport != "frames" or not job.item_tokens or tokens is None or tokens <= job.item_tokens:
        return
    factor = job.family.factor or 1
    raise UsageError("the video is larger than the server takes in one item",
                     f"{tokens:,} visual tokens, over its limit of {job.item_tokens:,}", where=label,
                     hint=f"use --total-pixels {job.item_tokens * factor * factor} or less (the budget that fits), "
                          "or fewer --frames")


def _sample_and_decode(video: VideoInput, job: VideoJob) -> tuple[DecodeResult, FrameFormat, list[str], float]:
    """Decode the sampled frames; when the container's claims prove wrong, plan again from real times."""
    opts, declared = job.options, video.declared_duration
    sampling = _declared_sampling(video, opts) if declared is not None else None
    if sampling is None:  # no usable claims, or a start the claims put past the end while frames go on
        with _progress(video, job, None) as progress:
            times = scan_times(video, progress)
        result, fmt = _decode_known(video, job, times)
        note = (_mismatch_note(video, times[-1]) if declared is not None else
                "the container gives no usable frame rate or count; frame times were read from the stream")
        return result, fmt, [note], times[-1]
    fmt = _format(video, job, sampling.count)
    verify_end = opts.end is None or opts.end >= declared
    with _progress(video, job, sampling.times[-1]) as progress:
        result = decode(video, sampling, fmt, verify_end=verify_end, progress=progress)
    if result.complete and not _overran(video, result, sampling):
        return result, fmt, [], declared
    if not result.complete:
        _refuse_truncated(video, result)
        if _fetch_last(video, result, sampling, fmt):
            return result, fmt, [_mismatch_note(video, result.seen[-1])], result.seen[-1]
    real_end = result.seen[-1]
    result, fmt = _decode_known(video, job, result.seen)
    return result, fmt, [_mismatch_note(video, real_end)], real_end


def _declared_sampling(video: VideoInput, opts: fr.SamplingOptions) -> Optional[fr.Sampling]:
    try:
        return fr.choose_frames(video.frame_count, video.fps, opts)
    except ValueError as exc:
        declared = video.declared_duration
        if opts.start is not None and opts.start >= declared:
            if has_frame_after(video, opts.start):
                return None
            _beyond_end(video, opts.start, declared)
        raise UsageError("cannot sample the video", str(exc), where=video.label) from None


def _decode_known(video: VideoInput, job: VideoJob, times: list[float]) -> tuple[DecodeResult, FrameFormat]:
    opts = job.options
    if not times:
        raise MediaError("cannot decode video", "no frame could be read", where=video.label)
    if opts.start is not None and opts.start > times[-1]:
        _beyond_end(video, opts.start, times[-1])
    try:
        sampling = fr.choose_from_times(times, opts)
    except ValueError as exc:
        raise UsageError("cannot sample the video", str(exc), where=video.label) from None
    fmt = _format(video, job, sampling.count)
    with _progress(video, job, sampling.times[-1]) as progress:
        result = decode(video, sampling, fmt, verify_end=False, progress=progress)
    if not result.complete:
        raise MediaError("cannot decode video", "the video changed while it was being read", where=video.label)
    return result, fmt


def _beyond_end(video: VideoInput, start: float, end: float) -> None:
    raise UsageError("--start is beyond the end of the video", f"--start {fr.format_time(start)}, the last "
                     f"frame is at {fr.format_time(end)}", where=video.label,
                     hint="pick a start inside the video")


def _overran(video: VideoInput, result: DecodeResult, sampling: fr.Sampling) -> bool:
    """Whether frames go on past what the container said (by more than a couple of frames)."""
    return result.overran and result.seen[-1] - sampling.times[-1] > TAIL_FRAMES / video.fps


def _refuse_truncated(video: VideoInput, result: DecodeResult) -> None:
    declared, real = video.declared_duration, result.seen[-1] if result.seen else 0.0
    if declared - real > max(1.0, 0.1 * declared):
        raise MediaError("video is truncated", f"its frames end at {fr.format_time(real)} but its header says "
                         f"{fr.format_time(declared)}", where=video.label,
                         hint=f"the file may be incomplete; copy it again, or pass --end {fr.format_time(real)} "
                              "to use the part that is there")


def _fetch_last(video: VideoInput, result: DecodeResult, sampling: fr.Sampling, fmt: FrameFormat) -> bool:
    """When only the final target is missing (the container counted a frame too many), use the last frame."""
    missing = sampling.count - len(result.times)
    last = result.seen[-1] if result.seen else None
    if missing != 1 or not result.reached_end or last is None or (result.times and result.times[-1] >= last):
        return False
    result.data.append(fetch_frame(video, last, fmt))
    result.times.append(last)
    result.complete = True
    return True


def _mismatch_note(video: VideoInput, real_end: Optional[float]) -> str:
    said = (f"{video.frame_count} frames at {video.fps:g} fps" if video.fps else "nothing usable")
    found = f"; the frames end at {fr.format_time(real_end)}" if real_end is not None else ""
    return f"the container said {said}{found}: sampled by the frames' own timestamps"


def _format(video: VideoInput, job: VideoJob, count: int) -> FrameFormat:
    """Each frame's sent size: the family's per-frame bounds and an even share of the total budget."""
    media, factor = job.media, job.family.factor
    low, high, total = _video_limits(job.family)
    user_max = user_max_pixels(job.family, media.max_pixels, media.max_tokens_per_image)
    try:
        low, high = fr.frame_pixel_limits(count, min_pixels=media.min_pixels or low, max_pixels=high,
                                          total_pixels=job.options.total_pixels or _item_total(job, total),
                                          user_max=user_max)
        height, width = fr.frame_size(video.height, video.width, factor, low, high)
    except AspectRatioError as exc:
        raise MediaError("video too thin for the model's grid", str(exc), where=video.label) from None
    except ValueError as exc:
        raise UsageError("pixel budget too small for the frames", str(exc),
                         hint="raise --max-pixels or --total-pixels, or lower --min-pixels") from None
    return FrameFormat(height, width, lossless=media.lossless)


@contextmanager
def _progress(video: VideoInput, job: VideoJob, span: Optional[float]) -> Iterator[Optional[ProgressFn]]:
    """Progress over the seconds of video to read, for long videos, when the caller shows progress."""
    span = span if span is not None else video.declared_duration
    if span is None or span < PROGRESS_FROM or job.progress is None:
        yield None
        return
    with job.progress(span, f"reading {video.label}") as advance:
        yield advance


def _fit_request(video: VideoInput, job: VideoJob, data: list[bytes], times: list[float], fmt: FrameFormat
         ) -> tuple[list[bytes], list[float], FrameFormat, list[str]]:
    """Shrink quality, then frame size, then frame count until the parts fit the budget; say what was done."""
    size = _parts_size(job, data, times, fmt)
    if size <= job.budget:
        return data, times, fmt, []
    opts = job.options
    min_count = fr.FRAME_FACTOR if opts.frames is not None else max(
        fr.FRAME_FACTOR, ceil_by_factor(opts.min_frames or fr.MIN_FRAMES, fr.FRAME_FACTOR))
    ladder = fr.fit_ladder(fmt.height, fmt.width, len(data), factor=job.family.factor, min_pixels=_frame_floor(job),
                           min_count=min(min_count, len(data)), even=job.transport == "frames")
    if fmt.lossless:  # PNG has no quality to lower
        ladder = [s for s in ladder if (s.height, s.width, s.count) != (fmt.height, fmt.width, len(data))]
    estimate = _Estimator(data, fmt, video.label)
    new_size, step = size, fr.FitStep(fmt.quality, fmt.height, fmt.width, len(data))
    overhead_per_frame = (size - sum(_b64_len(len(d)) for d in data)) / len(data)
    for step in ladder:  # noqa: B007 - the last step tried is reported below
        guess = step.count * (estimate.frame_bytes(step) * 4 / 3 + overhead_per_frame)
        if guess > job.budget * FIT_MARGIN and step is not ladder[-1]:
            continue
        keep = fr.spread(list(range(len(data))), step.count)
        new_fmt = replace(fmt, height=step.height, width=step.width, quality=step.quality)
        new_data = reencode([data[i] for i in keep], new_fmt, video.label)
        new_times = [times[i] for i in keep]
        new_size = _parts_size(job, new_data, new_times, new_fmt)
        if new_size <= job.budget:
            wanted, left = size_pair(size, job.budget)
            note = (f"{wanted} would not fit the {left} left in the request: "
                    f"sent {step.count} frames at {step.width}x{step.height}"
                    + ("" if fmt.lossless else f", JPEG quality {step.quality}")
                    + f" (planned {len(data)} at {fmt.width}x{fmt.height})")
            job.warn(f"{video.label}: {note}")
            return new_data, new_times, new_fmt, [note]
    taken, left = size_pair(new_size, job.budget)
    raise UsageError("the video does not fit the request-size limit",
                     f"even {step.count} frames at {step.width}x{step.height} take {taken}; "
                     f"{left} are left for it", where=video.label,
                     hint="raise --max-request-mb, or send a shorter part with --start/--end")


def size_pair(first: int, second: int) -> tuple[str, str]:
    """Two byte counts in one unit (kB below 1 MB), with as many decimals as it takes to tell them apart."""
    unit, scale = ("MB", fr.MB) if max(first, second) >= fr.MB else ("kB", 1000)
    for decimals in range(1, 7):
        shown = f"{first / scale:.{decimals}f}", f"{second / scale:.{decimals}f}"
        if shown[0] != shown[1] or first == second:
            break
    return f"{shown[0]} {unit}", f"{shown[1]} {unit}"


def _video_limits(family: Family) -> tuple[int, int, int]:
    """(min, max) pixels per frame and the total budget: the family's, or the generic ones off-grid."""
    if family.factor is not None:
        return family.video_min_pixels, family.video_max_pixels, family.video_total_pixels
    return fr.GENERIC_VIDEO_MIN_PIXELS, fr.GENERIC_VIDEO_MAX_PIXELS, fr.GENERIC_VIDEO_TOTAL_PIXELS


def _frame_floor(job: VideoJob) -> int:
    return job.media.min_pixels or _video_limits(job.family)[0]


class _Estimator:
    """Predicts frame sizes at other settings by re-encoding a few frames."""

    def __init__(self, data: list[bytes], fmt: FrameFormat, label: str) -> None:
        self.samples = fr.spread(data, ESTIMATE_SAMPLES)
        self.average = sum(len(d) for d in data) / len(data)
        self.fmt, self.label = fmt, label
        self.cache: dict[tuple[int, int, int], float] = {}

    def frame_bytes(self, step: fr.FitStep) -> float:
        """Expected encoded bytes of one frame at this step's quality and size."""
        key = (step.quality, step.height, step.width)
        if key not in self.cache:
            fmt = replace(self.fmt, height=step.height, width=step.width, quality=step.quality)
            ratio = sum(map(len, reencode(self.samples, fmt, self.label))) / sum(map(len, self.samples))
            self.cache[key] = ratio * self.average
        return self.cache[key]


def _parts_size(job: VideoJob, data: list[bytes], times: list[float], fmt: FrameFormat) -> int:
    """Bytes the frames take in the request body, as the wire format counts them."""
    mime = "image/png" if fmt.lossless else "image/jpeg"
    return job.wire_size([len(d) for d in data], times, mime, job.transport)


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)
