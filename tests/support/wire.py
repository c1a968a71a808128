"""OpenAI chat-completions wire format as vLLM speaks it: response builders and request readers."""

from __future__ import annotations

import base64
import io
import re
import time
import uuid
from http import HTTPStatus
from typing import Any

from PIL import Image

# vLLM's API-key middleware answers with this flat body, not the usual error envelope.
VLLM_UNAUTHORIZED = {"error": "Unauthorized"}

NGINX_413_HTML = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n"
    "<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n"
    "<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n"
)

_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}


def vllm_error(code: int, message: str) -> dict:
    """Return the JSON error body vLLM sends with an HTTP error status."""
    error_type = _ERROR_TYPES.get(code) or HTTPStatus(code).phrase.replace(" ", "") + "Error"
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def split_text(text: str) -> list[str]:
    """Split text into word-sized pieces (whitespace kept), like a tokenizer streams it."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def default_usage(text: str) -> dict:
    """Return a plausible usage object for a reply of `text`."""
    completion = len(text.split())
    return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}


class CompletionBuilder:
    """Builds chat.completion and chat.completion.chunk objects for one request."""

    def __init__(self, model: str):
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model

    def full(self, text: str, finish_reason: str, usage: dict) -> dict:
        """Return a non-streaming chat.completion object."""
        message = {"role": "assistant", "content": text, "tool_calls": []}
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": finish_reason, "stop_reason": None}
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": [choice], "usage": usage}

    def chunk(self, delta: dict | None, finish_reason: str | None = None,
              usage: dict | None = None) -> dict:
        """Return one chat.completion.chunk; delta=None gives the choice-less usage chunk."""
        choices = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        out = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": choices}
        if usage is not None:
            out["usage"] = usage
        return out


def _content_parts(request_json: Any) -> list[dict]:
    # Accept a recorded request as well as its parsed body.
    request_json = getattr(request_json, "json", request_json)
    parts = []
    for message in (request_json or {}).get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            parts.extend(p for p in content if isinstance(p, dict))
    return parts


def _decode_data_url(url: str) -> tuple[str, bytes]:
    match = re.match(r"data:([^;,]*)((?:;[^;,]*)*),", url)
    if not match:
        raise ValueError(f"not a data URL: {url[:60]!r}")
    payload = url[match.end():]
    if ";base64" in match.group(2):
        return match.group(1), base64.b64decode(payload, validate=True)
    return match.group(1), payload.encode()


def data_url_parts(request_json: Any) -> list[tuple[str, bytes]]:
    """Return (mime, bytes) for every image_url/video_url part of a chat request."""
    out = []
    for part in _content_parts(request_json):
        kind = part.get("type")
        if kind in ("image_url", "video_url"):
            out.append(_decode_data_url(part[kind]["url"]))
    return out


def decode_images(request_json: Any) -> list[Image.Image]:
    """Decode every image_url data-URL part of a chat request into a loaded PIL image."""
    images = []
    for part in _content_parts(request_json):
        if part.get("type") == "image_url":
            _, raw = _decode_data_url(part["image_url"]["url"])
            image = Image.open(io.BytesIO(raw))
            image.load()
            images.append(image)
    return images
