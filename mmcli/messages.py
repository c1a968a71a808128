"""The only code that knows the OpenAI chat wire format: a Job becomes the exact request body."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Optional

from .job import Job, Text

if TYPE_CHECKING:
    from .config import Quirks
    from .media.item import MediaItem

SHORTEN_AT = 64


def data_url(data: bytes, mime: str) -> str:
    """A base64 data URL for `data`."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def text_part(text: str) -> dict:
    """A text content part."""
    return {"type": "text", "text": text}


def image_part(url: str) -> dict:
    """An image content part pointing at a data URL or a remote URL."""
    return {"type": "image_url", "image_url": {"url": url}}


def video_part(url: str) -> dict:
    """A video content part (vLLM extension): a video data URL, frame list or remote URL."""
    return {"type": "video_url", "video_url": {"url": url}}


def video_frames_url(frames: list[bytes]) -> str:
    """vLLM's frame-list video URL, `data:video/jpeg;base64,<f1>,<f2>,...`, joined in one go."""
    return "data:video/jpeg;base64," + ",".join(base64.b64encode(f).decode("ascii") for f in frames)


def frame_label(time: float) -> str:
    """The text sent before a video frame that travels as its own image."""
    from .media.frames import format_time

    return f"Frame at {format_time(time)}"


def audio_part(data: bytes, mime: str, shape: str = "input_audio") -> dict:
    """An audio content part in the endpoint's shape: input_audio (base64 + format), an audio_url
    data URL, or Xinference's {"type": "audio", "audio_url": URL} with the URL as a plain string."""
    if shape == "xinference":
        return {"type": "audio", "audio_url": data_url(data, mime)}
    if shape == "audio_url":
        return {"type": "audio_url", "audio_url": {"url": data_url(data, mime)}}
    return {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(data).decode("ascii"), "format": mime.split("/")[-1]}}


def media_parts(item: "MediaItem", quirks: Optional["Quirks"] = None) -> list[dict]:
    """The content parts one prepared item becomes."""
    if item.kind == "audio":
        return [audio_part(item.data or b"", item.mime, quirks.audio_part if quirks else "input_audio")]
    if item.transport == "url":
        return [video_part(item.url or "") if item.kind == "video" else image_part(item.url or "")]
    if item.transport == "frames":
        return [video_part(video_frames_url(item.frames))]
    if item.transport == "images":
        parts = []
        for frame, time in zip(item.frames, item.times):
            parts += [text_part(frame_label(time)), image_part(data_url(frame, item.mime))]
        return parts
    if item.transport == "file":
        return [video_part(data_url(item.data or b"", item.mime))]
    return [image_part(data_url(item.data or b"", item.mime))]


def content_parts(job: Job, quirks: Optional["Quirks"] = None) -> list[dict]:
    """The job's content (media and interleaved text) as parts, the prompt not included."""
    return [text_part(part.text) if isinstance(part, Text) else p
            for part in job.content for p in ([part] if isinstance(part, Text) else media_parts(part, quirks))]


def build_request(job: Job, quirks: "Quirks", *, stream: Optional[bool] = None) -> dict:
    """The chat completion request for `job`: content first, then the prompt, as Qwen-style models expect."""
    gen = job.generation
    stream = gen.stream if stream is None else stream
    parts = content_parts(job, quirks)
    content = list(parts)
    if job.prompt:
        content.append(text_part(job.prompt))
    messages: list[dict] = []
    if gen.system:
        messages.append({"role": "system", "content": gen.system})
    messages.append({"role": "user", "content": content if parts else job.prompt})
    request: dict = {"model": job.model or "(first served model)", "messages": messages, "stream": stream}
    if gen.max_tokens is not None:
        request[quirks.max_tokens_field] = gen.max_tokens
    if gen.temperature is not None:
        request["temperature"] = gen.temperature
    if stream:
        request["stream_options"] = {"include_usage": True}
    return request


def frames_wire_size(frame_sizes: list[int], times: list[float], mime: str, transport: str) -> int:
    """Bytes frames take in a request body as `transport` (computed, not built), separators included."""
    payload = sum(_b64_len(n) for n in frame_sizes)
    if transport == "frames":
        return request_size(video_part("data:video/jpeg;base64,")) + payload + len(frame_sizes)
    if transport == "file":
        return request_size(video_part(f"data:{mime};base64,")) + payload
    image_overhead = request_size(image_part(f"data:{mime};base64,")) + 1
    labels = sum(request_size(text_part(frame_label(t))) + 1 for t in times)
    return labels + len(frame_sizes) * image_overhead + payload


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def shorten_data_urls(value):
    """A copy of a request with every base64 payload cut to a readable stub."""
    if isinstance(value, dict):
        return {k: _short_base64(v) if k == "data" else shorten_data_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_data_urls(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > SHORTEN_AT:
        head, _, payload = value.partition(",")
        return f"{head},{payload[:24]}...({len(payload):,} chars)"
    return value


def _short_base64(value):
    """input_audio's bare base64 payload, cut like a data URL's."""
    if isinstance(value, str) and len(value) > SHORTEN_AT:
        return f"{value[:24]}...({len(value):,} chars)"
    return shorten_data_urls(value)


def request_size(request: object) -> int:
    """Bytes a request body (or any part of one) takes as compact JSON."""
    import json

    return len(json.dumps(request, separators=(",", ":")).encode("utf-8"))
