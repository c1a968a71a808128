"""Transcription: audio decoded to 16 kHz mono WAV, split at quiet points under the upload limit, each
piece sent to /audio/transcriptions, the texts and timestamps joined back together."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..core.job import Job
    from ..media.audio import AudioInput, AudioOptions
    from ..core.runner import Result
    from .common import Context

FORMATS = ("text", "json", "srt", "vtt")
WAV_HEADER = 44
# Room left in each upload for the multipart envelope and the other fields.
ENVELOPE = 4096


@dataclass(frozen=True)
class TranscribeOptions:
    """What to ask for and how big each upload may be."""

    format: str = "text"
    language: Optional[str] = None
    prompt: Optional[str] = None
    max_upload_bytes: int = 25 * 1000 * 1000  # vLLM's and OpenAI's limit


@dataclass
class Piece:
    """One upload: WAV bytes and where they sit in the source."""

    start: float
    end: float
    data: bytes = field(repr=False)


@dataclass
class Transcript:
    """The joined answer for one file."""

    source: str
    text: str = ""
    segments: list[dict] = field(default_factory=list)
    language: Optional[str] = None
    duration: float = 0.0
    pieces: int = 0
    timestamps: str = "server"  # server: segments from the endpoint; pieces: one per upload
    complete: bool = True  # False: a later piece failed; the text is what the earlier pieces gave
    answered: int = 0  # pieces transcribed

    def to_dict(self) -> dict:
        """JSON-ready form."""
        data = {"source": self.source, "text": self.text, "language": self.language,
                "duration": round(self.duration, 3), "pieces": self.pieces, "timestamps": self.timestamps,
                "segments": self.segments}
        if not self.complete:
            data["complete"] = False
        return data


def pieces_of(audio: "AudioInput", audio_opts: "AudioOptions", opts: TranscribeOptions) -> list[Piece]:
    """Decode to 16 kHz mono and cut into WAV pieces under the upload limit, at quiet points."""
    from ..errors import UsageError
    from ..media.audio import check_span, decode, encode, quiet_cuts

    check_span(audio, audio_opts)
    decoded = decode(audio, audio_opts.rate, audio_opts.start, audio_opts.end, audio_opts.max_seconds)
    room = (opts.max_upload_bytes - WAV_HEADER - ENVELOPE) // 2  # 16-bit samples
    if room < decoded.rate:
        raise UsageError("the upload limit is too small", f"{opts.max_upload_bytes:,} bytes hold less than "
                         "a second of 16-bit audio", hint="raise --max-upload-mb")
    return [Piece(decoded.offset + a / decoded.rate, decoded.offset + b / decoded.rate,
                  encode(decoded.samples[a:b], decoded.rate, "wav"))
            for a, b in quiet_cuts(decoded.samples, decoded.rate, room)]


def wire_format(fmt: str) -> str:
    """The response_format asked of the server: timestamps need verbose_json, plain text needs json."""
    return "json" if fmt == "text" else "verbose_json"


def piece_jobs(label: str, pieces: list[Piece], ctx: "Context") -> list["Job"]:
    """One job per upload, in order; each knows where it sits in the source."""
    from ..core.job import Spoken
    from ..media.item import MediaItem

    jobs = []
    for n, piece in enumerate(pieces, 1):
        item = MediaItem(source=f"piece-{n}.wav", kind="audio", mime="audio/wav", data=piece.data)
        name = f"{label}: piece {n}/{len(pieces)} ({piece.start:.1f}-{piece.end:.1f} s)" if len(pieces) > 1 else label
        jobs.append(ctx.job([item], "", label=name, meta=Spoken(label, piece.start, piece.end)))
    return jobs


def request_fields(opts: TranscribeOptions) -> dict:
    """The form fields of every upload (the model is added by the sender)."""
    return {"language": opts.language, "prompt": opts.prompt, "response_format": wire_format(opts.format)}


def finish_transcript(label: str, results: list["Result"], total: int) -> Transcript:
    """transcribe's finish: the pieces' texts and timestamps joined (a stopped run: the pieces that arrived)."""
    done = [r for r in results if r.ok]
    found = Transcript(label, pieces=total, duration=sum(r.job.meta.end - r.job.meta.start for r in done))
    for result in done:
        piece = result.job.meta
        found.language = found.language or result.reply.get("language")
        _add_segments(found, result.reply, piece)
    found.text = " ".join(t for t in (r.text.strip() for r in done) if t)
    found.answered = len(done)
    found.complete = len(done) == total
    return found


def transcribe_one(checked, audio_opts: "AudioOptions", opts: TranscribeOptions, runner, ctx: "Context",
                   status=None) -> Transcript:
    """One file decoded only now (memory stays flat over many files), its pieces sent in order through the
    Runner. A stopped run raises its cause with the transcript of the pieces that arrived on `.partial`."""
    from ..media.audio import open_audio
    from ..errors import RunStopped

    label = checked.source.label
    track = checked.audio or open_audio(checked.source, what="video")
    jobs = piece_jobs(label, pieces_of(track, audio_opts, opts), ctx)
    fields = request_fields(opts)
    results = []
    try:
        for job in jobs:
            if status is not None and len(jobs) > 1:
                status(job.label)
            results.append(runner.transcribe(job, fields))
    except RunStopped as stopped:
        cause = stopped.cause
        cause.partial = finish_transcript(label, results, len(jobs))
        raise cause from None
    return finish_transcript(label, results, len(jobs))


def _add_segments(result: Transcript, reply: dict, piece) -> None:
    segments = reply.get("segments")
    if not isinstance(segments, list) or not segments:
        result.timestamps = "pieces"
        result.segments.append({"start": round(piece.start, 3), "end": round(piece.end, 3),
                                "text": reply["text"].strip()})
        return
    span = piece.end - piece.start
    added = 0
    for segment in segments:
        text = segment.get("text") if isinstance(segment, dict) else None
        if not isinstance(text, str) or not text.strip():
            continue
        # the server's times are trusted only as finite numbers inside the piece (else the piece's own)
        start = piece.start + min(_seconds(segment.get("start"), 0.0), span)
        end = min(piece.start + _seconds(segment.get("end"), span), piece.end)
        result.segments.append({"start": round(start, 3), "end": round(max(start, end), 3), "text": text.strip()})
        added += 1
    if not added and reply["text"].strip():  # segments with no usable text: the reply's text is the transcript
        result.segments.append({"start": round(piece.start, 3), "end": round(piece.end, 3),
                                "text": reply["text"].strip()})


def _seconds(value: object, default: float) -> float:
    """A time from the server: a finite number of seconds, not negative; `default` for anything else."""
    from ..switches import finite

    seconds = finite(value)  # None for nan, inf and a whole number too large for a float
    return default if seconds is None or seconds < 0 else seconds


def render(transcript: Transcript, fmt: str) -> str:
    """The transcript as text, JSON, SubRip or WebVTT."""
    if fmt == "json":
        return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=1) + "\n"
    if fmt == "text":
        return transcript.text + "\n"
    cues = [s for s in transcript.segments if s["text"]]
    if fmt == "srt":
        return "\n".join(f"{n}\n{_stamp(s['start'], ',')} --> {_stamp(s['end'], ',')}\n{s['text']}\n"
                         for n, s in enumerate(cues, 1))
    body = "\n".join(f"{_stamp(s['start'], '.')} --> {_stamp(s['end'], '.')}\n{s['text']}\n" for s in cues)
    return "WEBVTT\n\n" + body


def _stamp(seconds: float, mark: str) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{mark}{rest % 1000:03d}"
