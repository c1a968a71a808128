"""Questions about images and videos: one request holding every input, each sized to the model's grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from ..core.job import Job
from ..media.frames import SamplingOptions
from ..media.prepare import image_budget, image_item
from .common import Context

if TYPE_CHECKING:
    from ..core.inputs import CheckedInput
    from ..core.plan import Plan
    from ..core.runner import Result
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
    server_visual_tokens: Optional[int] = None  # --verify: what the server counted exactly
    complete: bool = True  # False: the run stopped part-way; the text is what arrived
    data: object = None  # with a schema: the answer as the object it checked out to
    structured: bool = False  # True: `data` is the answer, checked against the schema

    def __str__(self) -> str:
        return self.text

    @property
    def planned_visual_tokens(self) -> Optional[int]:
        """The visual tokens the plan counted, None when unknown."""
        return self.plan.visual_tokens if self.plan is not None else None


def finish_answer(results: list["Result"], warnings: list[str]) -> Answer:
    """ask's and video's finish: the Answer of the one request (whole or partial); its warnings join `warnings`."""
    from .common import add_warnings

    result = results[-1]
    add_warnings(warnings, result)
    return Answer(result.text, dict(result.usage), result.plan, result.finish_reason, result.verified,
                  result.model or result.job.model, warnings, result.server_visual_tokens, result.ok,
                  result.value, result.structured)


def answer_fields(answer: Answer) -> dict:
    """The one JSON shape of an answer: --json, a results line, a collected line."""
    from .common import check_fields

    data = {"answer": answer.data if answer.structured else answer.text, "model": answer.model,
            "finish_reason": answer.finish_reason, "usage": answer.usage,
            **check_fields(answer.planned_visual_tokens, answer.usage, answer.verified, answer.server_visual_tokens),
            "plan": answer.plan.summary() if answer.plan is not None else None}
    if answer.warnings:
        data["warnings"] = list(answer.warnings)
    return data


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
        from ..core.wire import job_request_size

        from ..media.videoplan import size_pair

        size = job_request_size(job, ctx.target.settings.endpoint.quirks)
        if size > sampling.max_request_bytes:
            shown, limit = size_pair(size, sampling.max_request_bytes)
            raise UsageError("the request is over the size limit", f"{shown} > the {limit} limit",
                             hint="raise --max-request-mb, or send fewer or smaller inputs")
    return job


def video_sound(checked: "CheckedInput", opts: "AudioOptions"):
    """A video's sound track, decoded and checked against the span before anything is sent."""
    from ..media.audio import check_span, open_audio

    if checked.source.url is not None:
        raise UsageError("--audio needs the video itself", "--pass-url sends only its address",
                         where=checked.source.label, hint="leave out --pass-url")
    track = open_audio(checked.source, what="video")
    check_span(track, opts)
    return track


def _audio(checked: "CheckedInput", opts: Optional["AudioOptions"], family) -> list:
    from .audio_parts import audio_content

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
    from ..core.wire import frames_wire_size, job_request_size
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
                       warn=ctx.events.warn, progress=ctx.events.seconds, frame_limit=sampling.frame_limit or quirks.frame_limit,
                       item_tokens=quirks.video_item_tokens)
        item = checked[i]
        items[i] = plan_video(item.video, job) if item.video else plan_video_url(item.source, job)
