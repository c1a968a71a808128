"""The plan every command builds: what will be sent, at what size and token cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .config import masked_url
from .messages import request_size, shorten_data_urls


@dataclass
class PlanItem:
    """One piece of media as it will be sent."""

    source: str
    kind: str  # image | video | page
    mime: str
    original_width: Optional[int] = None
    original_height: Optional[int] = None
    sent_width: Optional[int] = None
    sent_height: Optional[int] = None
    visual_tokens: Optional[int] = None
    bytes: int = 0
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # kind-specific: frames, timestamps, page number


@dataclass
class Plan:
    """Everything about one request that is known before it is sent."""

    model: Optional[str]
    family: str
    base_url: str
    items: list[PlanItem]
    request: dict

    def totals(self) -> dict:
        """Item count, visual tokens (None when any is unknown), payload and request bytes."""
        tokens = [item.visual_tokens for item in self.items]
        return {
            "items": len(self.items),
            "visual_tokens": None if any(t is None for t in tokens) else sum(tokens),
            "bytes": sum(item.bytes for item in self.items),
            "request_bytes": request_size(self.request),
        }

    def to_dict(self) -> dict:
        """The plan as JSON-ready data, base64 payloads shortened."""
        return {
            "model": self.model,
            "family": self.family,
            "base_url": masked_url(self.base_url),
            "items": [asdict(item) for item in self.items],
            "totals": self.totals(),
            "request": shorten_data_urls(self.request),
        }
