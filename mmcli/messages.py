"""The only code that knows the OpenAI chat wire format: content parts and request bodies."""

from __future__ import annotations

import base64
from typing import Optional
from urllib.parse import urlsplit

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


def build_request(model: str, parts: list[dict], prompt: str, *, system: Optional[str] = None,
                  max_tokens: Optional[int] = None, temperature: Optional[float] = None,
                  stream: bool = True, base_url: str = "") -> dict:
    """A chat completion request: media parts first, then the prompt, as Qwen-style models expect."""
    content = list(parts)
    if prompt:
        content.append(text_part(prompt))
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": content if parts else prompt})
    request: dict = {"model": model, "messages": messages, "stream": stream}
    if max_tokens is not None:
        # OpenAI's newer models refuse max_tokens; every other server knows max_tokens.
        key = "max_completion_tokens" if urlsplit(base_url).hostname == "api.openai.com" else "max_tokens"
        request[key] = max_tokens
    if temperature is not None:
        request["temperature"] = temperature
    if stream:
        request["stream_options"] = {"include_usage": True}
    return request


def shorten_data_urls(value):
    """A copy of a request with every base64 payload cut to a readable stub."""
    if isinstance(value, dict):
        return {k: shorten_data_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_data_urls(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > SHORTEN_AT:
        head, _, payload = value.partition(",")
        return f"{head},{payload[:24]}...({len(payload):,} chars)"
    return value


def request_size(request: object) -> int:
    """Bytes a request body (or any part of one) takes as compact JSON."""
    import json

    return len(json.dumps(request, separators=(",", ":")).encode("utf-8"))
