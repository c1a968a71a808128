"""The plan of a request: what will be sent, at what size and token cost, before it is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..urls import masked_url
from ..media.item import MediaItem
from .wire import request_size, shorten_data_urls


@dataclass
class Plan:
    """Everything about one request that is known before it is sent."""

    model: Optional[str]
    family: str
    base_url: str
    items: list[MediaItem]
    request: Optional[dict]  # None once let go after sending (let_go)
    family_source: str = ""  # flag, id, root, profile or default
    notes: list[str] = field(default_factory=list)
    # Text the server writes into the prompt beside the media (vLLM's Qwen3-VL frame-pair labels):
    # prompt tokens, not visual ones, so `visual_tokens` leaves it out.
    inserted_text: list[str] = field(default_factory=list)
    resent: int = 0  # how many of `items` come first from the conversation's earlier turns (sent as they were)
    sent_request_bytes: Optional[int] = field(default=None, repr=False)  # the request's size, once it was let go

    def __post_init__(self) -> None:
        # a plan is shown, logged and handed to Python callers: never with the URL's password
        self.base_url = masked_url(self.base_url)

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
            "request_bytes": request_size(self.request) if self.request is not None else self.sent_request_bytes,
        }

    def let_go(self) -> None:
        """After sending, in a run that keeps many results: the request body and the items' payloads are let go,
        their sizes kept (totals() and summary() say what they said). Only for items nothing else sends again."""
        if self.request is None:
            return
        self.sent_request_bytes = request_size(self.request)
        self.request = None
        for item in self.items:
            item.let_go()

    def summary(self) -> dict:
        """What results keep of a plan: the totals and each item's sizes, no payload."""
        return {"totals": self.totals(), "items": [_item_sizes(item.summary()) for item in self.items]}

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


SIZE_KEYS = ("source", "kind", "original_width", "original_height", "sent_width", "sent_height", "visual_tokens",
             "bytes")


def _item_sizes(summary: dict) -> dict:
    return {key: summary[key] for key in SIZE_KEYS}


@dataclass
class RecordedPlan:
    """A plan as an export's manifest kept it (its summary): enough to finish an answer; no request."""

    recorded: dict

    @property
    def visual_tokens(self) -> Optional[int]:
        """The visual tokens the plan counted, None when unknown."""
        return self.recorded["totals"]["visual_tokens"]

    def totals(self) -> dict:
        """Item count, visual tokens, payload and request bytes, as recorded."""
        return dict(self.recorded["totals"])

    def summary(self) -> dict:
        """The recorded summary itself."""
        return self.recorded


def summed_totals(totals: list[dict]) -> dict:
    """The totals of several requests: counts and bytes added, visual tokens None when any is unknown."""
    tokens = [t["visual_tokens"] for t in totals]
    return {"items": sum(t["items"] for t in totals), "visual_tokens": None if None in tokens else sum(tokens),
            "bytes": sum(t["bytes"] for t in totals), "request_bytes": sum(t["request_bytes"] for t in totals)}
