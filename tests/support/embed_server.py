"""A scripted endpoint that also answers POST /v1/embeddings the way vLLM's pooling runner does.

Without a scripted action, each conversation gets a small vector computed from what it holds: the
mean colour of its images, or the colour a text names ("a red car" -> red). So an image searched
with itself scores 1.0, and "red" finds the red picture, with no model at all.
"""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

from PIL import Image

from .scripted_server import DEFAULT_MODEL, ScriptedServer, _Handler

EMBED_PATH = "/v1/embeddings"
FACTOR = 28
COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0),
           "white": (1.0, 1.0, 1.0), "yellow": (1.0, 1.0, 0.0)}
TEXT_OVERHEAD = 7  # tokens the scripted "template" adds to every conversation


def conversation_vector(messages: list[dict]) -> tuple[list[float], int]:
    """(vector, prompt tokens) for one conversation."""
    colour, tokens = None, TEXT_OVERHEAD
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") == "image_url":
                header, _, payload = part["image_url"]["url"].partition(",")
                image = Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")
                tokens += (image.width // FACTOR) * (image.height // FACTOR) + 2
                small = image.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
                mean = tuple(c / 255 for c in small)
                colour = colour if colour is not None and sum(mean) == 0 else mean
            elif part.get("type") == "text":
                for word in part.get("text", "").lower().replace(".", " ").split():
                    tokens += 1
                    if word in COLOURS:
                        colour = COLOURS[word]
    r, g, b = colour or (0.0, 0.0, 0.0)
    return [r, g, b, 0.05, 0.0, 0.0, 0.0, 0.0], tokens


class _EmbedHandler(_Handler):
    def do_POST(self) -> None:
        """Embeddings from the script, else computed; chat as the scripted server does."""
        if self.path.split("?")[0] != EMBED_PATH:
            super().do_POST()
            return
        record = self._record(self._read_body())
        if not self._authorized():
            return
        payload = record.json if isinstance(record.json, dict) else {}
        owner = self.server.owner
        with owner._lock:
            action = owner._actions.popleft() if owner._actions else None
        if action is not None:
            self._perform(action, payload)
            return
        self._send_json(200, embeddings_body(payload))
        with owner._lock:
            owner.embeddings_answered += 1


def embeddings_body(payload: dict) -> dict:
    """vLLM's reply to an embeddings request in chat form (one conversation or a list)."""
    messages = payload.get("messages") or []
    conversations = messages if messages and isinstance(messages[0], list) else [messages]
    data, total = [], 0
    for i, conversation in enumerate(conversations):
        vector, tokens = conversation_vector(conversation)
        data.append({"index": i, "object": "embedding", "embedding": vector})
        total += tokens
    return {"id": "embd-test", "object": "list", "created": 0, "model": payload.get("model") or DEFAULT_MODEL,
            "data": data, "usage": {"prompt_tokens": total, "total_tokens": total, "completion_tokens": 0}}


class EmbeddingServer(ScriptedServer):
    """ScriptedServer plus POST /v1/embeddings; scripted actions (Status, Raw, Drop...) come first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._httpd.RequestHandlerClass = _EmbedHandler  # read per connection, so swapping it here is enough
        self.embeddings_answered = 0  # computed embeddings replies sent in whole

    def embedding_requests(self) -> list[dict]:
        """The JSON bodies of every POST /v1/embeddings, in order."""
        with self._lock:
            return [r.json for r in self.requests if r.method == "POST" and r.path.split("?")[0] == EMBED_PATH]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


__all__ = ["EMBED_PATH", "EmbeddingServer", "conversation_vector", "cosine", "embeddings_body", "json"]
