"""The only code that knows the OpenAI chat wire format: a Job becomes the exact request body."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Callable, Optional

from .job import Embedded, Job, Text
from ..urls import masked_url

if TYPE_CHECKING:
    from ..settings import Quirks
    from ..presets import Preset
    from ..media.item import MediaItem
    from ..schema import Schema

SHORTEN_AT = 64
# Families whose vLLM processor writes "<t seconds>" before each frame pair of a video (get_video_repl).
LABELLED_FAMILIES = ("qwen3-vl",)
TEMPORAL_PATCH = 2  # frames per pair, as the labels are averaged
TICKS_PER_SECOND = 1000.0  # frame numbering for sources without a usable frame rate: milliseconds
VLLM_DEFAULT_FPS = 1.0  # what vLLM assumes for a frame list that comes without timing


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
    from ..media.frames import format_time

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
    """The content parts one prepared item becomes; on vLLM each carries the SHA-256 of its bytes as
    `uuid`, the key vLLM caches processed media by across requests (other servers never get it)."""
    parts = _bare_media_parts(item, quirks)
    if quirks is not None and quirks.media_uuid and item.transport != "url":
        payloads = iter(item.frames if item.transport == "images" else [None] * len(parts))
        for part in parts:
            if part["type"] != "text":
                frame = next(payloads)
                part["uuid"] = media_uuid(item) if frame is None else sha256_hex(frame)
    return parts


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data`, in hex: how the history and vLLM's media cache name media."""
    return hashlib.sha256(data).hexdigest()


def media_uuid(item: "MediaItem") -> str:
    """The SHA-256 of an item's bytes sent: its one payload, or its frames one after another."""
    if item.data is not None:
        return sha256_hex(item.data)
    digest = hashlib.sha256()
    for frame in item.frames:
        digest.update(frame)
    return digest.hexdigest()


def _bare_media_parts(item: "MediaItem", quirks: Optional["Quirks"]) -> list[dict]:
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
    prompt = job.prompt
    if gen.schema is not None and quirks.structured_output == "none":
        from ..schema import instruction

        prompt = f"{prompt}\n\n{instruction(gen.schema.schema)}" if prompt else instruction(gen.schema.schema)
    if prompt:
        content.append(text_part(prompt))
    messages: list[dict] = []
    if job.earlier is not None:  # a follow-up: the conversation so far as it was sent, its system prompt first
        messages += job.earlier.messages
    elif gen.system:
        messages.append(system_message(gen.system))
    messages.append({"role": "user", "content": content if parts else prompt})
    request: dict = {"model": job.model or "(first served model)", "messages": messages, "stream": stream}
    if gen.max_tokens is not None:
        request[quirks.max_tokens_field] = gen.max_tokens
    if gen.temperature is not None:
        request["temperature"] = gen.temperature
    if stream:
        request["stream_options"] = {"include_usage": True}
    if gen.schema is not None:
        request.update(structured_output(gen.schema, quirks))
    timed = _timed_frame_list(job, quirks)
    if timed is not None:
        request["media_io_kwargs"] = {"video": video_timing(timed)}
    return request


def structured_output(schema: "Schema", quirks: "Quirks") -> dict:
    """The request fields that constrain the answer to `schema`, in the endpoint's own form."""
    if schema.regex is not None:  # only vLLM's own field takes a regular expression
        return {"structured_outputs": {"regex": schema.regex}}
    if quirks.structured_output == "structured_outputs":  # vLLM's own field
        return {"structured_outputs": {"json": schema.schema}}
    if quirks.structured_output == "none":  # asked in the prompt instead (build_request)
        return {}
    return {"response_format": {"type": "json_schema",
                                 "json_schema": {"name": schema.name, "schema": schema.schema}}}


def video_timing(item: "MediaItem") -> dict:
    """vLLM's `media_io_kwargs.video` for a frame list: keep every frame, and give the frames' real times.

    Each frame is numbered by its source frame (time x source rate), so Qwen3-VL's labels (index / fps)
    come out in seconds of the source, a `--start` offset included. `total_num_frames` and `duration`
    describe the stretch the frames cover (one frame interval each), so Qwen2.5-VL's sampled rate,
    frames / total_num_frames x fps, is the rate they were really taken at (its temporal positions).
    `num_frames: -1` goes with them because a request's fps alone makes vLLM drop the server's value.
    """
    rate = float(item.details.get("video_fps") or TICKS_PER_SECOND)
    times = item.times
    count = len(times)
    interval = (times[-1] - times[0]) / (count - 1) if count > 1 else 1 / rate
    total = max(count, round(count * interval * rate))
    return {"num_frames": -1, "fps": rate, "frames_indices": [round(t * rate) for t in times],
            "total_num_frames": total, "duration": total / rate}


def inserted_text(job: Job, quirks: "Quirks") -> list[str]:
    """The text vLLM writes into the prompt beside the job's media: Qwen3-VL's `<t seconds>` per frame pair."""
    if job.family.name not in LABELLED_FAMILIES:
        return []
    timed = _timed_frame_list(job, quirks)
    labels: list[str] = []
    for item in _frame_lists(job):
        if item is timed:
            timing = video_timing(item)
            labels += pair_labels(timing["frames_indices"], timing["fps"])
        else:  # vLLM's defaults for a frame list without timing: frames 0, 1, 2, ... at 1 fps
            labels += pair_labels(list(range(len(item.frames))), VLLM_DEFAULT_FPS)
    return labels


def pair_labels(indices: list[int], fps: float) -> list[str]:
    """Qwen3-VL's frame-pair labels as vLLM computes them: the pair's mean of index / fps, one decimal."""
    if len(indices) % TEMPORAL_PATCH:
        indices = indices + [indices[-1]] * (TEMPORAL_PATCH - len(indices) % TEMPORAL_PATCH)
    seconds = [i / fps for i in indices]
    return [f"<{(seconds[k] + seconds[k + 1]) / 2:.1f} seconds>" for k in range(0, len(seconds), TEMPORAL_PATCH)]


def _frame_lists(job: Job) -> list["MediaItem"]:
    return [item for item in job.items if item.transport == "frames"]


def _timed_frame_list(job: Job, quirks: "Quirks") -> Optional["MediaItem"]:
    """The frame list whose timing the request carries: only where the server takes per-request media_io_kwargs,
    and only for a single frame list, since those kwargs apply to every video of the request alike."""
    if not quirks.media_io_kwargs:
        return None
    lists = _frame_lists(job)
    return lists[0] if len(lists) == 1 and lists[0].times else None


def embedding_conversation(job: Job, preset: "Preset") -> list[dict]:
    """One item to embed as the messages of one conversation, written the way `preset` says."""
    text = job.meta.text if isinstance(job.meta, Embedded) else None
    parts = content_parts(job)
    if text is not None:
        system, words = preset.text_system, preset.text_format.replace("{text}", text)
    else:
        system, words = preset.image_system, preset.image_text
    if words:
        parts.append(text_part(words))
    messages = [system_message(system)] if system else []
    return messages + [{"role": "user", "content": parts}]


def build_embedding_request(jobs: list[Job], quirks: "Quirks", preset: "Preset") -> dict:
    """The POST /embeddings body (vLLM's chat form): one conversation, or a list of them for a batch."""
    conversations = [embedding_conversation(job, preset) for job in jobs]
    model = jobs[0].model if jobs else None
    request: dict = {"model": model or "(first served model)",
                     "messages": conversations[0] if len(conversations) == 1 else conversations,
                     "encoding_format": "float"}
    if preset.generation_prompt:
        request["add_generation_prompt"] = True
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
    """A copy of a request with every base64 payload cut to a readable stub and every URL's password masked."""
    if isinstance(value, dict):
        return {k: _short_base64(v) if k == "data" else shorten_data_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_data_urls(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > SHORTEN_AT:
        head, _, payload = value.partition(",")
        return f"{head},{payload[:24]}...({len(payload):,} chars)"
    if isinstance(value, str) and value[:8].lower().startswith(("http://", "https://")):
        return masked_url(value)
    return value


def _short_base64(value):
    """input_audio's bare base64 payload, cut like a data URL's."""
    if isinstance(value, str) and len(value) > SHORTEN_AT:
        return f"{value[:24]}...({len(value):,} chars)"
    return shorten_data_urls(value)


def job_request_size(job: Job, quirks: "Quirks") -> int:
    """Bytes `job`'s request body takes, counted without base64-encoding its media (exactly the same)."""
    from dataclasses import replace

    from ..media.item import MediaItem

    hollow, payload = [], 0
    for part in job.content:
        if isinstance(part, MediaItem):
            payload += sum(_b64_len(len(frame)) for frame in part.frames)
            payload += _b64_len(len(part.data)) if part.data is not None else 0
            part = replace(part, data=b"" if part.data is not None else None, frames=[b""] * len(part.frames))
        hollow.append(part)
    return request_size(build_request(replace(job, content=hollow), quirks)) + payload


def request_size(request: object) -> int:
    """Bytes a request body (or any part of one) takes as compact JSON."""
    import json

    return len(json.dumps(request, separators=(",", ":")).encode("utf-8"))


# ---- earlier turns: a sent message kept with its media payloads by SHA-256, and sent again as it was

MEDIA_REF = "$media"  # marks a payload taken out of a kept message; no wire field has this name


def kept_message(message: dict, keep: Callable[[bytes, str], str]) -> dict:
    """A copy of a sent message with every base64 payload replaced by a reference; `keep(bytes, mime)`
    stores one payload and returns its SHA-256. `restored_message` gives back the very same message."""
    def walk(value, parent: str = ""):
        if isinstance(value, dict):
            return {k: _kept_base64(v, keep) if (parent == "input_audio" and k == "data") else walk(v, k)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, parent) for v in value]
        if isinstance(value, str) and value.startswith("data:") and ";base64," in value[:200]:
            head, _, payload = value.partition(",")
            mime = head[len("data:"):].split(";", 1)[0]
            frame_mime = "image/jpeg" if mime == "video/jpeg" else mime  # a frame list's pieces are JPEGs
            pieces = [_exact_base64(piece) for piece in payload.split(",")]
            if all(p is not None for p in pieces):
                return {MEDIA_REF: "data_url", "head": head, "sha256": [keep(p, frame_mime) for p in pieces]}
        return value

    return walk(message)


def _kept_base64(value, keep: Callable[[bytes, str], str]):
    data = _exact_base64(value) if isinstance(value, str) else None
    if data is None:
        return value
    return {MEDIA_REF: "base64", "sha256": [keep(data, "application/octet-stream")]}


def _exact_base64(text: str) -> Optional[bytes]:
    """The bytes of a base64 payload that encodes back to exactly `text`; None for any other text
    (kept as it is, so the message always comes back byte for byte)."""
    import binascii

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None


def restored_message(kept: dict, payload: Callable[[str], bytes]) -> dict:
    """The message `kept_message` kept, byte for byte; `payload(sha256)` gives back each payload's bytes."""
    def walk(value):
        if isinstance(value, dict):
            if MEDIA_REF in value:
                encoded = ",".join(base64.b64encode(payload(sha)).decode("ascii") for sha in value["sha256"])
                return f"{value['head']},{encoded}" if value[MEDIA_REF] == "data_url" else encoded
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(kept)


def kept_payloads(kept) -> list[str]:
    """The SHA-256 of every payload a kept message refers to, in order."""
    if isinstance(kept, dict):
        if MEDIA_REF in kept:
            return list(kept["sha256"])
        return [sha for v in kept.values() for sha in kept_payloads(v)]
    if isinstance(kept, list):
        return [sha for v in kept for sha in kept_payloads(v)]
    return []


def without_media_uuids(message: dict) -> dict:
    """A sent message with the `uuid` of its media parts taken out, for an endpoint that must not get them."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    return {**message, "content": [{k: v for k, v in part.items() if k != "uuid"} for part in content]}


def assistant_message(text: str) -> dict:
    """An earlier answer as it goes back to the server in a follow-up."""
    return {"role": "assistant", "content": text}


def system_message(text: str) -> dict:
    """The system prompt as the first message."""
    return {"role": "system", "content": text}
