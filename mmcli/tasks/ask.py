"""Questions about images and videos: one request holding every input, each sized to the model's grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from ..job import Job
from ..media.frames import SamplingOptions
from ..media.item import MediaItem
from ..media.prepare import image_budget, image_item
from .common import Context

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..events import Events
    from ..inputs import CheckedInput
    from ..plan import Plan
    from ..runner import Result, Runner

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

    def __str__(self) -> str:
        return self.text


def answer_from(result: "Result", warnings: list[str]) -> Answer:
    """The Answer of one finished (or partial) result; its own warnings are added to `warnings`."""
    from .common import result_warnings

    for warning in result_warnings(result):
        if warning not in warnings:
            warnings.append(warning)
    return Answer(result.text, dict(result.usage), result.plan, result.finish_reason, result.verified,
                  result.model or result.job.model, warnings)


def prepare_ask(inputs: list, prompt: str, opts: "CommonOptions", events: "Events",
                sampling: Optional[SamplingOptions] = None,
                allowed: tuple[str, ...] = ("image", "video")) -> tuple["Runner", Job]:
    """Settings, inputs, endpoint, then the one job: what `mmcli ask`/`video` and the Python API share."""
    from ..flow import start

    started = start(inputs, opts, events, allowed=allowed)
    return started.runner, ask_job(started.checked, prompt, started.ctx, sampling)


def ask_job(checked: list["CheckedInput"], prompt: str, ctx: Context,
            sampling: Optional[SamplingOptions] = None) -> Job:
    """One job with every input in order: images at the image budget, videos by the video planner."""
    family = ctx.target.family
    budget = image_budget(family, ctx.media) if any(not c.is_video for c in checked) else None
    items: list[Optional[MediaItem]] = [
        None if c.is_video else image_item(c.source, c.image, budget, lossless=ctx.media.lossless)
        for c in checked]
    sampling = sampling or SamplingOptions()
    if any(c.is_video for c in checked):
        _plan_videos(checked, items, prompt, ctx, sampling)
    job = ctx.job(list(items), prompt, label=", ".join(c.source.label for c in checked) or "question")
    if any(c.is_video for c in checked):
        from ..messages import build_request, request_size

        from ..media.videoplan import size_pair

        size = request_size(build_request(job, ctx.target.settings.endpoint.quirks))
        if size > sampling.max_request_bytes:
            shown, limit = size_pair(size, sampling.max_request_bytes)
            raise UsageError("the request is over the size limit", f"{shown} > the {limit} limit",
                             hint="raise --max-request-mb, or send fewer or smaller inputs")
    return job


def _plan_videos(checked: list["CheckedInput"], items: list, prompt: str, ctx: Context,
                 sampling: SamplingOptions) -> None:
    """Plan the videos in place; each gets an even share of what the rest of the request leaves."""
    from ..messages import build_request, frames_wire_size, request_size
    from ..media.videoplan import VideoJob, default_transport, plan_video, plan_video_url, size_pair

    quirks = ctx.target.settings.endpoint.quirks
    transport = sampling.transport or default_transport(ctx.target.family, quirks.takes_video)
    pending = [i for i, c in enumerate(checked) if c.is_video]
    for n, i in enumerate(pending):
        others = ctx.job([item for item in items if item is not None], prompt)
        used = request_size(build_request(others, quirks))
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
