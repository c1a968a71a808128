"""The plan of a request: what will be sent, at what size and token cost, before it is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .urls import masked_url
from .media.item import MediaItem
from .messages import request_size, shorten_data_urls


@dataclass
class Plan:
    """Everything about one request that is known before it is sent."""

    model: Optional[str]
    family: str
    base_url: str
    items: list[MediaItem]
    request: dict
    family_source: str = ""  # flag, id, root, profile or default
    notes: list[str] = field(default_factory=list)
    # Text the server writes into the prompt beside the media (vLLM's Qwen3-VL frame-pair labels):
    # prompt tokens, not visual ones, so `visual_tokens` leaves it out.
    inserted_text: list[str] = field(default_factory=list)

    @property
    def visual_tokens(self) -> Optional[int]:
        """The visual tokens of every item, None when any item's cost is unknown (cheap: no serialising)."""
        tokens = [item.visual_tokens for item in self.items]
        return None if any(t is None for t in tokens) else sum(tokens)

    def totals(self) -> dict:
        """Item count, visual tokens (None when any is unknown), payload and request bytes."""
        return {
            "items": len(self.items),
            "visual_tokens": self.visual_tokens,
            "bytes": sum(item.bytes for item in self.items),
            "request_bytes": request_size(self.request),
        }

    def to_dict(self) -> dict:
        """The plan as JSON-ready data, base64 payloads shortened."""
        data = {
            "model": self.model,
            "family": self.family,
            "base_url": masked_url(self.base_url),
            "items": [item.summary() for item in self.items],
            "totals": self.totals(),
            "request": shorten_data_urls(self.request),
        }
        if self.family_source:
            data["family_source"] = self.family_source
        if self.notes:
            data["notes"] = list(self.notes)
        if self.inserted_text:
            data["inserted_text"] = list(self.inserted_text)
        return data
