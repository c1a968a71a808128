"""An input that passed every local check: where it came from and what it was opened as (no wire format)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .audio import AudioInput
    from .image import ImageInput
    from .sources import Source
    from .videodecode import VideoInput


@dataclass
class CheckedInput:
    """An input that passed every local check; `image` is set for decodable images, `video` for videos,
    `audio` for sound files (an audio-only WebM or MP4 included)."""

    source: "Source"
    image: Optional["ImageInput"] = None
    video: Optional["VideoInput"] = None
    audio: Optional["AudioInput"] = None

    @property
    def is_video(self) -> bool:
        """Whether this input is a video (opened, or a URL passed through)."""
        return self.video is not None or (self.source.sniffed.kind == "video" and self.audio is None)

    @property
    def is_audio(self) -> bool:
        """Whether this input is sound only."""
        return self.audio is not None
