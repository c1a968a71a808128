"""Audio in a question: each sound input decoded and split into parts, each part after its own label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..core.job import Content, Text

if TYPE_CHECKING:
    from ..media.audio import AudioInput, AudioOptions
    from ..families import Family


def audio_content(audio: "AudioInput", opts: Optional["AudioOptions"], family: "Family") -> list[Content]:
    """The content one audio input becomes: one item, or "Audio 0:30-1:00" + item for each part."""
    from ..media.audio import AudioOptions, clock, prepare_audio

    items = prepare_audio(audio, opts or AudioOptions(), family.audio_encoder)
    if len(items) == 1:
        return list(items)
    content: list[Content] = []
    for item in items:
        content += [Text(f"Audio {clock(item.details['start'])}-{clock(item.details['end'])}"), item]
    return content


def sound_options(sampling, sample_rate: Optional[int], audio_format: str) -> "AudioOptions":
    """How a video's sound track is cut (to the frames' --start/--end) and encoded; checked before any file."""
    from ..media.audio import AudioOptions

    opts = AudioOptions(sample_rate=sample_rate, format=audio_format.lower(), start=sampling.start, end=sampling.end)
    return opts.checked()
