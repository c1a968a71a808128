"""The shared path of every client command: inputs -> checked media -> model -> plan -> answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import client
from .config import CommonOptions, MediaOptions, Settings, resolve_settings
from .errors import MediaError, UsageError
from .media.image import ImageInput, check_aspect, open_image, prepare_image
from .media.resize import PixelBudget
from .media.frames import SamplingOptions
from .media.sources import Source, open_sources
from .media.video import VideoInput, open_video
from .messages import build_request, data_url, image_part, request_size
from .models import FAMILIES, Family, family_for_model, user_max_pixels
from .plan import Plan, PlanItem
from .render import Output


@dataclass
class CheckedInput:
    """An input that passed every local check; `image` is set for decodable images, `video` for videos."""

    source: Source
    image: Optional[ImageInput] = None
    video: Optional[VideoInput] = None

    @property
    def is_video(self) -> bool:
        """Whether this input is a video (opened, or a URL passed through)."""
        return self.video is not None or self.source.sniffed.kind == "video"


def check_inputs(specs: list[str], opts: CommonOptions, out: Output, allowed: tuple[str, ...] = ("image",)
                 ) -> list[CheckedInput]:
    """Open and validate every input before anything is sent anywhere."""
    settings_timeout = opts.endpoint.timeout or 30.0
    sources = open_sources(specs, pass_url=opts.media.pass_url,
                           fetch=lambda url, cap: client.fetch_url(url, cap, settings_timeout))
    checked = []
    for source in sources:
        refuse_unsupported(source, allowed)
        if source.sniffed.kind == "video" and source.url is None:
            checked.append(CheckedInput(source, video=open_video(source)))
            continue
        if source.url is not None or source.sniffed.kind == "pdf":  # PDFs are opened by the command
            checked.append(CheckedInput(source))
            continue
        image = open_image(source.read(), source.label)
        check_aspect(image)
        for note in image.warnings:
            out.warn(note)
        checked.append(CheckedInput(source, image))
    return checked


def check_question(inputs: list[str], question: str, usage: str) -> None:
    """Refuse an empty question, or a lone input that was meant as media but left no question."""
    import os

    from .media.sources import is_url

    looks_like_input = question == "-" or is_url(question) or question.lower().startswith("data:") \
        or os.path.exists(question)
    if not inputs and looks_like_input:
        raise UsageError("no question given", f"{question!r} is an input, and the last argument is the question",
                         hint=usage)
    if not question.strip():
        raise UsageError("the question is empty", hint=usage)


def refuse_unsupported(source: Source, allowed: tuple[str, ...]) -> None:
    """A clear error for inputs of a kind this command cannot send."""
    sniffed = source.sniffed
    undecodable = sniffed.format == "heic" or (sniffed.format == "avif" and not _pillow_reads_avif())
    if sniffed.kind == "image" and undecodable:
        raise MediaError("unsupported image format", f"it is {sniffed.a_description}, which mmcli cannot decode",
                         where=source.label, hint="convert it to JPEG or PNG first")
    if sniffed.kind in allowed:
        return
    if sniffed.kind == "unknown":
        kinds = [_KIND_FORMATS[kind] for kind in allowed if kind in _KIND_FORMATS]
        raise MediaError("not a supported media file", _unknown_reason(source, allowed), where=source.label,
                         hint="pass " + " or ".join(kinds or [_KIND_FORMATS["image"]]))
    hint = 'ask about PDF pages with: mmcli docqa FILE.pdf "question"' if sniffed.kind == "pdf" else ""
    raise MediaError("unsupported input", f"it is {sniffed.a_description}; this command takes "
                     + " or ".join(allowed) + " inputs", where=source.label, hint=hint)


def _pillow_reads_avif() -> bool:
    from PIL import features

    return bool(features.check("avif"))


_KIND_NAMES = {"image": "an image", "video": "a video", "pdf": "a PDF"}
_KIND_FORMATS = {"image": "a JPEG, PNG, WebP, GIF, BMP or TIFF image", "video": "an MP4, MOV, WebM, MKV or AVI video",
                 "pdf": "a PDF document"}


def _unknown_reason(source: Source, allowed: tuple[str, ...] = ("image",)) -> str:
    head = source.data[:512] if source.data is not None else _head(source)
    kinds = " or ".join(_KIND_NAMES.get(kind, kind) for kind in allowed)
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it looks like text, not {kinds}"
    return f"the bytes are not a known {' or '.join(allowed)} format"


def _head(source: Source) -> bytes:
    if source.path is None:
        return b""
    with open(source.path, "rb") as handle:
        return handle.read(512)


def resolve_model(settings: Settings, dry_run: bool, out: Output) -> tuple[Optional[str], Family]:
    """The model to ask (the endpoint's first when none was named) and its family."""
    model = settings.model
    if not dry_run:
        from .launch import ensure_local_server

        ensure_local_server(settings, out)  # auto-start a local vLLM if that is what is missing
    if model is None and not dry_run:
        with out.spinner("asking the endpoint which model it serves"):
            model = client.first_model(settings.endpoint)
    if settings.family:
        if settings.family not in FAMILIES:
            raise UsageError("unknown model family", where=settings.family,
                             hint="known families: " + ", ".join(FAMILIES))
        return model, FAMILIES[settings.family]
    if model is None:
        # A dry run with no model: assume the local default, a Qwen2.5-VL server.
        return None, FAMILIES["qwen2.5-vl"] if settings.endpoint.profile.name == "local" else FAMILIES["generic"]
    return model, family_for_model(model)


def image_budget(family: Family, media: MediaOptions) -> PixelBudget:
    """The pixel budget images are sized to, from the family and the user's limits."""
    factor = family.factor
    max_pixels = user_max_pixels(family, media.max_pixels, media.max_tokens_per_image) or family.max_pixels
    # The family's minimum gives way to a smaller maximum the user asked for; an explicit minimum does not.
    min_pixels = media.min_pixels or min(family.min_pixels, max_pixels)
    if factor is not None and max_pixels < factor * factor:
        raise UsageError("pixel budget too small", f"{max_pixels} pixels is less than one {factor}x{factor} patch",
                         hint=f"the smallest budget is --max-pixels {factor * factor} (one visual token)")
    if min_pixels > max_pixels:
        raise UsageError("--min-pixels is above the maximum", f"{min_pixels} > {max_pixels}")
    longest = None if media.max_pixels else family.longest_side
    return PixelBudget(factor=factor, min_pixels=min_pixels, max_pixels=max_pixels, longest_side=longest)


def plan_image(checked: CheckedInput, budget: PixelBudget, media: MediaOptions) -> tuple[PlanItem, dict]:
    """The plan item and content part for one checked image."""
    source = checked.source
    if checked.image is None:
        item = PlanItem(source=source.label, kind="image", mime=source.sniffed.mime, notes=["URL sent unchanged"])
        return item, image_part(source.url or "")
    image = checked.image
    prepared = prepare_image(image, budget, lossless=media.lossless)
    item = PlanItem(source=source.label, kind="image", mime=prepared.mime,
                    original_width=image.width, original_height=image.height,
                    sent_width=prepared.width, sent_height=prepared.height,
                    visual_tokens=budget.tokens(prepared.height, prepared.width), bytes=len(prepared.data),
                    notes=list(image.warnings))
    return item, image_part(data_url(prepared.data, prepared.mime))


def plan_request(checked: list[CheckedInput], settings: Settings, model: Optional[str], family: Family,
                 prompt: str, opts: CommonOptions, out: Output, video: Optional[SamplingOptions] = None) -> Plan:
    """The plan of every input in order (images at the image budget, videos by the video planner)."""
    budget = image_budget(family, opts.media) if any(not c.is_video for c in checked) else None
    planned = [None if c.is_video else _as_list(plan_image(c, budget, opts.media)) for c in checked]
    video = video or SamplingOptions()
    if any(c.is_video for c in checked):
        _plan_videos(checked, planned, settings, model, family, prompt, opts, out, video)
    plan = build_plan(settings, model, family, [p[0] for p in planned], [x for p in planned for x in p[1]],
                      prompt, opts)
    size = plan.totals()["request_bytes"] if any(c.is_video for c in checked) else 0
    if size > video.max_request_bytes:
        raise UsageError("the request is over the size limit", f"{size / 1e6:.1f} MB > {video.max_request_mb:g} MB",
                         hint="raise --max-request-mb, or send fewer or smaller inputs")
    return plan


def _as_list(planned: tuple[PlanItem, dict]) -> tuple[PlanItem, list[dict]]:
    return planned[0], [planned[1]]


def _plan_videos(checked: list[CheckedInput], planned: list, settings: Settings, model: Optional[str],
                 family: Family, prompt: str, opts: CommonOptions, out: Output, video: SamplingOptions) -> None:
    """Plan the videos in place; each gets an even share of what the rest of the request leaves."""
    from .media.videoplan import VideoJob, default_transport, plan_video, plan_video_url

    transport = video.transport or default_transport(family, settings.endpoint.base_url)
    pending = [i for i, c in enumerate(checked) if c.is_video]
    for n, i in enumerate(pending):
        others = [x for p in planned if p is not None for x in p[1]]
        used = request_size(build_plan(settings, model, family, [], others, prompt, opts).request)
        # A little headroom: clients may serialise the body with a few more separators than counted here.
        share = int((video.max_request_bytes - used) * 0.995) // (len(pending) - n)
        if share <= 0:
            raise UsageError("no room for the video in the request", f"the rest of the request takes "
                             f"{used / 1e6:.1f} MB of the {video.max_request_mb:g} MB limit",
                             where=checked[i].source.label, hint="raise --max-request-mb")
        job = VideoJob(family, opts.media, video, transport, share)
        item = checked[i]
        planned[i] = plan_video(item.video, job, out) if item.video else plan_video_url(item.source, job)


def build_plan(settings: Settings, model: Optional[str], family: Family, items: list[PlanItem],
               parts: list[dict], prompt: str, opts: CommonOptions) -> Plan:
    """The request and its plan."""
    gen = opts.generation
    request = build_request(model or "(first served model)", parts, prompt, system=gen.system,
                            max_tokens=gen.max_tokens, temperature=gen.temperature,
                            stream=gen.stream, base_url=settings.endpoint.base_url)
    return Plan(model=model, family=family.name, base_url=settings.endpoint.base_url, items=items,
                request=request)


def settings_for(opts: CommonOptions) -> Settings:
    """Resolved settings for these options (environment and config file read now)."""
    return resolve_settings(opts.endpoint)


def send(plan: Plan, settings: Settings, opts: CommonOptions, out: Output,
         extra: Optional[dict] = None) -> client.ChatResult:
    """Send the planned request, showing the answer as it arrives; JSON (plus `extra`) at the end with --json."""
    stop_spinner = out.start_spinner("waiting for the model")
    sinks: list = []  # created at the first piece of text, once the spinner is gone

    def on_text(delta: str) -> None:
        if not sinks:
            stop_spinner()
            sinks.append(out.answer_sink())
        sinks[0].write(delta)

    def finish() -> None:
        stop_spinner()
        if sinks:
            sinks.pop().close()

    try:
        result = client.chat(settings.endpoint, plan.request, on_text=on_text, status=out.status)
    except client.PartialAnswerError as exc:
        finish()
        if opts.output.json:
            out.emit_json(result_json(exc.partial, plan, error=exc.message(), extra=extra))
        raise
    finally:
        finish()
    if result.finish_reason == "length":
        out.warn(f"the answer stopped at the token limit ({opts.generation.max_tokens or 'server default'}); "
                 "raise --max-tokens for a longer answer")
    if opts.output.json:
        out.emit_json(result_json(result, plan, extra=extra))
    return result


def result_json(result: client.ChatResult, plan: Plan, error: Optional[str] = None,
                extra: Optional[dict] = None) -> dict:
    """The --json object: answer, model, finish reason, usage and plan (and a command's `extra` keys)."""
    payload = {"answer": result.text, "model": result.model, "finish_reason": result.finish_reason,
               "usage": result.usage, "plan": plan.to_dict(), **(extra or {})}
    if error:
        payload["error"] = error
    return payload
