"""A prepared piece of media: the bytes to send and what is known about them (no wire format here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# How an item travels: one payload, a frame list, frames as separate images, the original file, or a URL.
TRANSPORTS = ("inline", "frames", "images", "file", "url")


@dataclass
class MediaItem:
    """One image, page or video ready to send, with its sizes, visual tokens and notes."""

    source: str
    kind: str  # image | page | video
    mime: str
    transport: str = "inline"
    data: Optional[bytes] = field(default=None, repr=False)  # inline and file payloads
    frames: list[bytes] = field(default_factory=list, repr=False)  # frames and images transports
    times: list[float] = field(default_factory=list)  # seconds of the source, one per frame
    url: Optional[str] = None  # the url transport: sent unchanged for the server to fetch
    original_width: Optional[int] = None
    original_height: Optional[int] = None
    sent_width: Optional[int] = None
    sent_height: Optional[int] = None
    visual_tokens: Optional[int] = None
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # kind-specific: frames, timestamps, page number
    sent_bytes: Optional[int] = field(default=None, repr=False)  # the payload's size, once it was let go

    @property
    def bytes(self) -> int:
        """Bytes of media payload (before base64)."""
        if self.data is not None:
            return len(self.data)
        if self.sent_bytes is not None:
            return self.sent_bytes
        return sum(len(frame) for frame in self.frames)

    def let_go(self) -> None:
        """Drop the payload once it was sent and nothing will send it again (a long run keeps only sizes)."""
        self.sent_bytes = self.bytes
        self.data, self.frames = None, []

    def summary(self) -> dict:
        """JSON-ready description of the item, without its payload."""
        return {
            "source": self.source, "kind": self.kind, "mime": self.mime,
            "original_width": self.original_width, "original_height": self.original_height,
            "sent_width": self.sent_width, "sent_height": self.sent_height,
            "visual_tokens": self.visual_tokens, "bytes": self.bytes,
            "notes": list(self.notes), "details": dict(self.details),
        }
