"""Options for sound inputs, declared once for the commands that take audio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .options import parse_time

if TYPE_CHECKING:
    from ..media.audio import AudioOptions

AUDIO = "Audio"

SampleRate = Annotated[Optional[int], typer.Option(
    "--sample-rate", min=8000, max=192000, metavar="HZ", rich_help_panel=AUDIO, show_default=False,
    help="Sample rate audio is sent at (mixed to mono). [default: 16000, what Qwen2-Audio and Whisper expect]")]
AudioFormat = Annotated[str, typer.Option(
    "--audio-format", metavar="wav|flac", rich_help_panel=AUDIO,
    help="Send 16-bit WAV, or FLAC (about a third of the size) for servers that decode it (vLLM does).")]
MaxAudioSeconds = Annotated[float, typer.Option(
    "--max-audio-seconds", min=0.001, metavar="SECONDS", rich_help_panel=AUDIO,
    help="Longest audio to decode; longer files are refused before they fill memory.")]
MaxAudioParts = Annotated[int, typer.Option(
    "--max-audio-parts", min=1, metavar="N", rich_help_panel=AUDIO,
    help="Most 30-second parts one audio input may be split into.")]
Start = Annotated[Optional[str], typer.Option(
    "--start", metavar="TIME", rich_help_panel=AUDIO, show_default=False,
    help="Start of the audio to send: seconds (90.5) or [h:]mm:ss (1:30).")]
End = Annotated[Optional[str], typer.Option(
    "--end", metavar="TIME", rich_help_panel=AUDIO, show_default=False,
    help="End of the audio to send: seconds or [h:]mm:ss.")]


def audio_options(sample_rate: Optional[int], audio_format: str, start: Optional[str], end: Optional[str],
                  max_audio_seconds: float, max_audio_parts: int) -> "AudioOptions":
    """The checked AudioOptions of these flags."""
    from ..media.audio import AudioOptions

    opts = AudioOptions(sample_rate=sample_rate, format=audio_format.lower(), start=parse_time(start, "--start"),
                        end=parse_time(end, "--end"), max_seconds=max_audio_seconds, max_parts=max_audio_parts)
    return opts.checked()
