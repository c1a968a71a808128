"""`mmcli transcribe`: speech to text through a Whisper-style /audio/transcriptions endpoint."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..audio_options import End, MaxAudioSeconds, Start
from ..options import ONE_SERVER, REQUEST_PARAMETERS, with_options

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

TRANSCRIPTION = "Transcription"

HELP = """Transcribe speech in audio or video files.

Each FILE is decoded on this machine (any common container: WAV, FLAC, MP3, Ogg/Opus, M4A, WebM, MP4 ...), mixed to mono at 16 kHz and sent to POST /v1/audio/transcriptions (Whisper, Voxtral and Qwen3-ASR on vLLM; OpenAI). Files over --max-upload-mb are split at quiet points and the pieces' texts and timestamps joined back together."""

EPILOG = """Examples:

  mmcli transcribe interview.mp3

  mmcli transcribe talk.m4a --format srt -o          # writes talk.srt beside talk.m4a

  mmcli transcribe *.wav --language de --format json"""


class TranscriptFormat(str, Enum):
    """What the transcript looks like."""

    text = "text"
    json = "json"
    srt = "srt"
    vtt = "vtt"


EXTENSIONS = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}


@with_options(*REQUEST_PARAMETERS, "json_output", "dry_run", "debug", helps={**ONE_SERVER,
    "json_output": "Print one JSON object (model, and per file: source, text, language, duration, segments) "
                   "instead of the transcripts; with -o the files are written as --format says.",
    "dry_run": "Decode and split every file and list the pieces that would be uploaded (with --json: as JSON); "
               "send nothing."})
def transcribe(
    files: Annotated[list[str], typer.Argument(
        metavar="FILE", show_default=False,
        help="Audio or video files: paths, http(s) URLs, data URLs, or - for standard input.")],
    format: Annotated[TranscriptFormat, typer.Option(
        "--format", metavar="text|json|srt|vtt", rich_help_panel=TRANSCRIPTION,
        help="Plain text, JSON with timed segments, SubRip or WebVTT subtitles.")] = TranscriptFormat.text,
    language: Annotated[Optional[str], typer.Option(
        "--language", metavar="CODE", rich_help_panel=TRANSCRIPTION, show_default=False,
        help="Language spoken, as an ISO-639-1 code (en, de, ...); default: the model detects it.")] = None,
    prompt: Annotated[Optional[str], typer.Option(
        "--prompt", metavar="TEXT", rich_help_panel=TRANSCRIPTION, show_default=False,
        help="Text to guide the model's style or spelling (names, terms).")] = None,
    write: Annotated[bool, typer.Option(
        "--write", "-o", rich_help_panel=TRANSCRIPTION,
        help="Write NAME.txt/.json/.srt/.vtt beside each input instead of printing.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", rich_help_panel=TRANSCRIPTION, help="With -o, overwrite files that already exist.")] = False,
    max_upload_mb: Annotated[float, typer.Option(
        "--max-upload-mb", min=0.1, metavar="MB", rich_help_panel=TRANSCRIPTION,
        help="Largest upload the endpoint takes (vLLM and OpenAI: 25); longer audio is split at quiet points.")] = 25.0,
    start_at: Start = None,
    end: End = None,
    max_audio_seconds: MaxAudioSeconds = 4 * 3600.0,
    opts: "CommonOptions" = None,
) -> None:
    """Transcribe speech in audio or video files."""
    from mmcli.media.audio import AudioOptions
    from ..output.show_transcripts import run_transcribe
    from mmcli.tasks.transcribe import TranscribeOptions
    from ..options import parse_time

    audio = AudioOptions(start=parse_time(start_at, "--start"), end=parse_time(end, "--end"),
                         max_seconds=max_audio_seconds, max_parts=10 ** 9)
    options = TranscribeOptions(format=format.value, language=language, prompt=prompt,
                                max_upload_bytes=int(max_upload_mb * 1_000_000))
    run_transcribe(files, opts, audio, options, write=write, force=force, extension=EXTENSIONS[format.value])
