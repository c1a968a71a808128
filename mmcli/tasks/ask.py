"""Questions about images and videos: one request holding every input, each sized to the model's grid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from ..job import Job
from ..media.frames import SamplingOptions
from ..media.item import MediaItem
from ..media.prepare import image_budget, image_item
from .common import Context

if TYPE_CHECKING:
    from ..inputs import CheckedInput
    from ..media.audio import AudioOptions

# Clients may serialise the body with a few more separators than counted here.
SIZE_HEADROOM = 0.995


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
        from ..messages import build_request, request_size

        size = request_size(build_request(job, ctx.target.settings.endpoint.quirks))
        if size > sampling.max_request_bytes:
            raise UsageError("the request is over the size limit",
                             f"{size / 1e6:.2f} MB > {sampling.max_request_mb:g} MB",
                             hint="raise --max-request-mb, or send fewer or smaller inputs")
    return job


def _audio(checked: "CheckedInput", opts: Optional["AudioOptions"], family) -> list:
    from .audio import audio_content

    return audio_content(checked.audio, opts, family)


def _flat(items: list) -> list:
    """Items in order, an audio input's parts (a list) spliced in, unplanned videos (None) left out."""
    return [part for item in items if item is not None for part in (item if isinstance(item, list) else [item])]


def _plan_videos(checked: list["CheckedInput"], items: list, prompt: str, ctx: Context,
                 sampling: SamplingOptions) -> None:
    """Plan the videos in place; each gets an even share of what the rest of the request leaves."""
    from ..messages import build_request, frames_wire_size, request_size
    from ..media.videoplan import VideoJob, default_transport, plan_video, plan_video_url

    quirks = ctx.target.settings.endpoint.quirks
    transport = sampling.transport or default_transport(ctx.target.family, quirks.takes_video)
    pending = [i for i, c in enumerate(checked) if c.is_video]
    for n, i in enumerate(pending):
        others = ctx.job(_flat(items), prompt)
        used = request_size(build_request(others, quirks))
        share = int((sampling.max_request_bytes - used) * SIZE_HEADROOM) // (len(pending) - n)
        if share <= 0:
            raise UsageError("no room for the video in the request", f"the rest of the request takes "
                             f"{used / 1e6:.2f} MB of the {sampling.max_request_mb:g} MB limit",
                             where=checked[i].source.label, hint="raise --max-request-mb")
        job = VideoJob(ctx.target.family, ctx.media, sampling, transport, share, wire_size=frames_wire_size,
                       warn=ctx.events.warn, progress=ctx.events.seconds, frame_limit=sampling.frame_limit or quirks.frame_limit)
        item = checked[i]
        items[i] = plan_video(item.video, job) if item.video else plan_video_url(item.source, job)
