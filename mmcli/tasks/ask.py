"""Questions about images and videos: one request holding every input, each sized to the model's grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import UsageError
from ..job import Job
from ..media.frames import SamplingOptions
from ..media.prepare import image_budget, image_item
from .common import Context

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..events import Events
    from ..inputs import CheckedInput
    from ..plan import Plan
    from ..runner import Result, Runner
    from ..media.audio import AudioOptions

# Clients may serialise the body with a few more separators than counted here.
SIZE_HEADROOM = 0.995


@dataclass
class Answer:
    """One answer: its text, the tokens used, the plan it was sent with, and what to know about it."""

    text: str
    usage: dict = field(default_factory=dict)
    plan: Optional["Plan"] = field(default=None, repr=False)
    finish_reason: Optional[str] = None
    verified: Optional[bool] = None  # False: the server counted fewer tokens than planned; None: unknown
    model: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    data: object = None  # with schema=: the answer as the object it checked out to

    def __str__(self) -> str:
        return self.text


def answer_from(result: "Result", warnings: list[str]) -> Answer:
    """The Answer of one finished (or partial) result; its own warnings are added to `warnings`."""
    from .common import result_warnings

    for warning in result_warnings(result):
        if warning not in warnings:
            warnings.append(warning)
    return Answer(result.text, dict(result.usage), result.plan, result.finish_reason, result.verified,
                  result.model or result.job.model, warnings, result.value)


def prepare_ask(inputs: list, prompt: str, opts: "CommonOptions", events: "Events",
                sampling: Optional[SamplingOptions] = None,
                allowed: tuple[str, ...] = ("image", "video", "audio"), audio: Optional["AudioOptions"] = None,
                before_connect: Optional[Callable[[list], None]] = None) -> tuple["Runner", Job]:
    """Settings, inputs, endpoint, then the one job: what `mmcli ask`/`video` and the Python API share.

    `before_connect` sees the checked inputs before any server is asked or started (more input checks)."""
    from ..flow import connect, open_inputs

    opened = open_inputs(inputs, opts, events, allowed=allowed)
    if before_connect is not None:
        before_connect(opened.checked)
    started = connect(opened, opts, events)
    return started.runner, ask_job(started.checked, prompt, started.ctx, sampling, audio)


def ask_job(checked: list["CheckedInput"], prompt: str, ctx: Context,
            sampling: Optional[SamplingOptions] = None, audio: Optional["AudioOptions"] = None) -> Job:
    """One job with every input in order: images at the image budget, videos by the video planner,
    audio decoded and split into labelled parts."""
    family = ctx.target.family
    pictures = [c for c in checked if not c.is_video and not c.is_audio]
    budget = image_budget(family, ctx.media) if pictures else None
    items: list = [None if c.is_video else _audio(c, audio, family) if c.is_audio
                   else image_item(c.source, c.image, budget, lossless=ctx.media.lossless) for c in checked]
    sampling = sampling or SamplingOptions()
    if any(c.is_video for c in checked):
        _plan_videos(checked, items, prompt, ctx, sampling)
    job = ctx.job(_flat(items), prompt, label=", ".join(c.source.label for c in checked) or "question")
    if any(c.is_video for c in checked):
        from ..messages import job_request_size

        from ..media.videoplan import size_pair

        size = job_request_size(job, ctx.target.settings.endpoint.quirks)
        if size > sampling.max_request_bytes:
            shown, limit = size_pair(size, sampling.max_request_bytes)
            raise UsageError("the request is over the size limit", f"{shown} > the {limit} limit",
                             hint="raise --max-request-mb, or send fewer or smaller inputs")
    return job


def _audio(checked: "CheckedInput", opts: Optional["AudioOptions"], family) -> list:
    from .audio import audio_content

    return audio_content(checked.audio, opts, family)


def _flat(items: list) -> list:
    """Items in order, an audio input's parts (a list) spliced in, unplanned videos (None) left out."""
    return [part for item in items if item is not None for part in (item if isinstance(item, list) else [item])]


def _check_frame_budget(ctx: Context) -> None:
    """Refuse per-frame budgets above the family's ceiling before a single frame is decoded."""
    from ..media.prepare import check_ceiling

    media = ctx.media
    for pixels, flag in ((media.min_pixels, "--min-pixels"), (media.max_pixels, "--max-pixels")):
        if pixels:
            check_ceiling(ctx.target.family, pixels, flag)
    if media.min_pixels and media.max_pixels and media.min_pixels > media.max_pixels:
        raise UsageError("--min-pixels is above --max-pixels", f"{media.min_pixels:,} > {media.max_pixels:,}")


def _plan_videos(checked: list["CheckedInput"], items: list, prompt: str, ctx: Context,
                 sampling: SamplingOptions) -> None:
    """Plan the videos in place; each gets an even share of what the rest of the request leaves."""
    from ..messages import frames_wire_size, job_request_size
    from ..media.videoplan import VideoJob, default_transport, plan_video, plan_video_url, size_pair

    _check_frame_budget(ctx)
    quirks = ctx.target.settings.endpoint.quirks
    transport = sampling.transport or default_transport(ctx.target.family, quirks.takes_video)
    pending = [i for i, c in enumerate(checked) if c.is_video]
    for n, i in enumerate(pending):
        others = ctx.job(_flat(items), prompt)
        used = job_request_size(others, quirks)
        share = int((sampling.max_request_bytes - used) * SIZE_HEADROOM) // (len(pending) - n)
        if share <= 0:
            taken, limit = size_pair(used, sampling.max_request_bytes)
            raise UsageError("no room for the video in the request",
                             f"the rest of the request takes {taken} of the {limit} limit",
                             where=checked[i].source.label, hint="raise --max-request-mb")
        job = VideoJob(ctx.target.family, ctx.media, sampling, transport, share, wire_size=frames_wire_size,
                       warn=ctx.events.warn, progress=ctx.events.seconds, frame_limit=sampling.frame_limit or quirks.frame_limit)
        item = checked[i]
        items[i] = plan_video(item.video, job) if item.video else plan_video_url(item.source, job)
