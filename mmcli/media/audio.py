"""Audio decoding with PyAV: any container to mono samples at one rate, cut, split and encoded (no wire format)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..errors import MediaError, UsageError
from .item import MediaItem

if TYPE_CHECKING:
    import numpy as np

    from .sources import Source

DEFAULT_RATE = 16000  # Qwen2-Audio's and Whisper's feature extractors
PART_SECONDS = 30.0  # Whisper-style encoders see at most 30 s at a time
FORMATS = ("wav", "flac")
# A decoded length this much shorter than the header declares means the file was cut off.
TRUNCATION_SLACK = 0.05
PADDING_SLACK = 0.1  # decoded sound past the declared end by less than this is encoder padding


@dataclass(frozen=True)
class AudioOptions:
    """How audio is decoded, cut, split and encoded."""

    sample_rate: Optional[int] = None  # None: DEFAULT_RATE
    format: str = "wav"
    start: Optional[float] = None
    end: Optional[float] = None
    max_seconds: float = 600.0
    max_parts: int = 20
    part_seconds: float = PART_SECONDS

    @property
    def rate(self) -> int:
        """The sample rate audio is sent at."""
        return self.sample_rate or DEFAULT_RATE

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong with these options and how to mend it, if anything (checked before any file is opened)."""
        found = []
        if self.format not in FORMATS:
            found.append((f"--audio-format must be wav or flac, not {self.format!r}",
                          "give --audio-format wav (any server) or flac (smaller; vLLM decodes it)"))
        if self.start is not None and self.end is not None and self.end <= self.start:
            found.append((f"--end ({self.end:g} s) must be after --start ({self.start:g} s)",
                          "give an --end later than --start, or leave --end out for the rest"))
        if not 0 < self.max_seconds < math.inf:
            found.append(("--max-audio-seconds must be a positive number", "e.g. --max-audio-seconds 3600"))
        return found

    def checked(self) -> "AudioOptions":
        """These options, or the UsageError (with its hint) for the first thing wrong with them."""
        problems = self.problems()
        if problems:
            raise UsageError("invalid audio options", problems[0][0], hint=problems[0][1])
        return self


@dataclass
class AudioInput:
    """An opened audio track: what its container declares (not trusted for length)."""

    source: "Source"
    stream_index: int
    codec: str
    sample_rate: int
    channels: int
    declared: Optional[float]  # seconds the container claims, if it says


@dataclass
class Decoded:
    """Mono 16-bit samples at `rate`, starting at `offset` seconds of the source."""

    samples: "np.ndarray"
    rate: int
    offset: float

    @property
    def seconds(self) -> float:
        """Length of the decoded audio."""
        return len(self.samples) / self.rate


def _av():
    import av

    return av


def _container(source: "Source"):
    av = _av()
    target = str(source.path) if source.path is not None and source.data is None else io.BytesIO(source.read())
    try:
        return av.open(target, mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError("cannot decode audio", _ffmpeg_reason(exc), where=source.label,
                         hint="the file may be truncated or corrupt; try re-encoding it") from None


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(".").lower() if text else "FFmpeg could not read it"


def has_video_stream(source: "Source") -> bool:
    """Whether a container holds pictures (an audio-only WebM or MP4 has none); unreadable ones count as
    video, so the video decoder reports what is wrong with them."""
    try:
        container = _container(source)
    except MediaError:
        return True
    with container:
        return any(s.type == "video" and not _is_cover_art(s) for s in container.streams)


def _is_cover_art(stream) -> bool:
    disposition = getattr(stream, "disposition", None)
    return bool(disposition is not None and "attached_pic" in str(disposition).lower())


def open_audio(source: "Source", *, what: str = "file") -> AudioInput:
    """Probe the first sound track of `source`; a clear error when there is none."""
    with _container(source) as container:
        streams = container.streams.audio
        if not streams:
            raise MediaError("no sound track", f"the {what} has no audio stream", where=source.label,
                             hint="leave out --audio" if what == "video" else "pass an audio file")
        stream = streams[0]
        declared = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / 1_000_000
        ctx = stream.codec_context
        track = (stream.index, ctx.name, ctx.sample_rate or 0, ctx.channels or 0)
    from .audioheader import checked_length

    declared = checked_length(source, declared)  # FFmpeg trims a WAV header's claim to the file's size
    return AudioInput(source, *track, declared)


def check_span(audio: AudioInput, opts: AudioOptions) -> None:
    """Refuse, before decoding, audio whose declared span is over the length or part caps."""
    if audio.declared is None:
        return
    start = opts.start or 0.0
    if start >= audio.declared:
        raise MediaError("--start is past the end of the audio", f"it lasts {audio.declared:.2f} s",
                         where=audio.source.label)
    span = min(opts.end, audio.declared) - start if opts.end is not None else audio.declared - start
    _check_length(span, opts, audio.source.label)


def _check_length(span: float, opts: AudioOptions, label: str) -> None:
    if span > opts.max_seconds + 1e-6:
        raise MediaError("audio too long", f"{span:.1f} s, over the {opts.max_seconds:g} s limit", where=label,
                         hint="cut it with --start/--end, or raise --max-audio-seconds")
    parts = part_count(span, opts.part_seconds)
    if parts > opts.max_parts:
        raise UsageError("too many audio parts", f"{span:.1f} s makes {parts} parts of {opts.part_seconds:g} s, "
                         f"over the limit of {opts.max_parts}", where=label,
                         hint="cut it with --start/--end, or raise --max-audio-parts")


def part_count(seconds: float, part_seconds: float = PART_SECONDS) -> int:
    """How many parts of at most `part_seconds` cover `seconds`."""
    return max(1, math.ceil(round(seconds, 6) / part_seconds))


def decode(audio: AudioInput, rate: int, start: Optional[float] = None, end: Optional[float] = None,
           max_seconds: float = math.inf) -> Decoded:
    """Decode [start, end) of the track to mono 16-bit at `rate`; refuse past `max_seconds` while decoding."""
    import numpy as np

    av = _av()
    chunks: list = []
    offset: Optional[float] = None
    with _container(audio.source) as container:
        stream = container.streams[audio.stream_index]
        stream.thread_type = "AUTO"
        if start:
            target = start + _origin(stream)
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        try:
            offset = _decode_into(container, stream, rate, chunks, start, end, max_seconds, audio.source.label)
        except av.error.FFmpegError as exc:
            raise MediaError("cannot decode audio", f"{_ffmpeg_reason(exc)} (the file may be truncated or corrupt)",
                             where=audio.source.label, hint="re-encode it, e.g. to WAV or FLAC") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return _cut(Decoded(samples, rate, offset or 0.0), audio, start, end)


def _origin(stream) -> float:
    """Where the stream's clock starts (MP3 files often start at 25 ms): times here count from it."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _mono(frame) -> "np.ndarray":
    """One output frame as mono int16 samples."""
    import numpy as np

    chunk = frame.to_ndarray()
    if chunk.dtype == np.int16:
        return chunk.reshape(-1)
    mean = chunk.mean(axis=0)
    return (np.clip(mean, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def _resampler(layout, rate: int):
    """Mono and stereo are mixed and converted to 16-bit by FFmpeg (for stereo to 16-bit it weighs the
    channels 1/2 each: the mean); other layouts keep their channels, averaged here."""
    av = _av()
    # Output in frames of a few seconds: fewer round trips through Python than one per packet.
    if layout.nb_channels <= 2:
        return av.AudioResampler(format="s16", layout="mono", rate=rate, frame_size=rate * 4)
    return av.AudioResampler(format="fltp", layout=layout.name, rate=rate, frame_size=rate * 4)


def _decode_into(container, stream, rate: int, chunks: list, start: Optional[float], end: Optional[float],
                 max_seconds: float, label: str) -> Optional[float]:
    """Append mono chunks to `chunks`; return the source time of the first sample (None: nothing decoded)."""
    resampler, offset, have, stop = None, None, 0, math.inf
    for frame in container.decode(stream):
        if resampler is None:
            resampler = _resampler(frame.layout, rate)
            offset = float(frame.time) - _origin(stream) if frame.time is not None else 0.0
            lead = max(0.0, (start or 0.0) - offset)  # decoded before --start (seeking is inexact)
            stop = (lead + (end - (start or 0.0)) if end is not None else lead + max_seconds) + 1.0
        for out in resampler.resample(frame):
            chunks.append(_mono(out))
            have += out.samples
        if have > stop * rate:
            if end is None:
                raise MediaError("audio too long", f"over the {max_seconds:g} s limit (found while decoding; "
                                 "the header says less)", where=label,
                                 hint="cut it with --start/--end, or raise --max-audio-seconds")
            return offset
    if resampler is not None:
        chunks.extend(_mono(out) for out in resampler.resample(None))
    return offset


def _cut(decoded: Decoded, audio: AudioInput, start: Optional[float], end: Optional[float]) -> Decoded:
    label = audio.source.label
    begin = max(0, round(((start or 0.0) - decoded.offset) * decoded.rate))
    stop = None if end is None else max(begin, round((end - decoded.offset) * decoded.rate))
    samples = decoded.samples[begin:stop]
    if len(samples) == 0:
        raise MediaError("no audio decoded", "the sound track is empty" if not start else
                         "nothing is left between --start and --end", where=label)
    if end is None and audio.declared:
        got = decoded.offset + len(decoded.samples) / decoded.rate
        if got < audio.declared * (1 - TRUNCATION_SLACK) - 0.1:
            raise MediaError("the audio is truncated", f"decoded {got:.2f} s of the {audio.declared:.2f} s its "
                             "header declares", where=label, hint="the file was cut off; use a complete copy")
        if audio.declared < got < audio.declared + PADDING_SLACK:
            # Codec padding past the container's playing length (AAC's last frame): not part of the sound.
            samples = samples[:max(1, round((audio.declared - decoded.offset) * decoded.rate) - begin)]
    return Decoded(samples, decoded.rate, (start or 0.0) if start else decoded.offset)


def encode(samples: "np.ndarray", rate: int, fmt: str = "wav") -> bytes:
    """16-bit mono WAV or FLAC bytes of int16 samples (or floats in [-1, 1])."""
    import numpy as np

    if samples.dtype == np.int16:
        pcm = samples.astype("<i2", copy=False)
    else:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    if fmt == "wav":
        import wave

        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm.tobytes())
        return buffer.getvalue()
    return _flac(pcm, rate)


def _flac(pcm: "np.ndarray", rate: int) -> bytes:
    av = _av()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        step = 4608
        for i in range(0, len(pcm), step):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + step], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def split_points(total: int, rate: int, part_seconds: float = PART_SECONDS) -> list[tuple[int, int]]:
    """Sample ranges of consecutive parts of at most `part_seconds`, the last one possibly shorter."""
    step = int(round(part_seconds * rate))
    return [(i, min(i + step, total)) for i in range(0, total, step)] or [(0, 0)]


def clock(seconds: float) -> str:
    """'m:ss' (or 'h:mm:ss') for whole seconds, the way part labels read."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def audio_tokens(encoder: Optional[str], samples: int, rate: int) -> Optional[int]:
    """Tokens an audio part costs for a family's audio encoder; None when the family does not tell."""
    if encoder != "qwen2-audio" or rate != DEFAULT_RATE:
        return None
    # WhisperFeatureExtractor: 10 ms hop (100 frames/s), 30 s window (3000 frames), a mask of
    # ceil(samples / hop) frames; the encoder's conv (stride 2) then average pooling (2) shorten it.
    frames = min(math.ceil(samples / 160), 3000)
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


def audio_items(audio: AudioInput, decoded: Decoded, opts: AudioOptions, encoder: Optional[str]
                ) -> list[MediaItem]:
    """One prepared item per part of at most `opts.part_seconds`, in order; details hold the part's span."""
    items = []
    for begin, stop in split_points(len(decoded.samples), decoded.rate, opts.part_seconds):
        part = decoded.samples[begin:stop]
        t0, t1 = decoded.offset + begin / decoded.rate, decoded.offset + stop / decoded.rate
        data = encode(part, decoded.rate, opts.format)
        seconds = len(part) / decoded.rate
        tokens = audio_tokens(encoder, len(part), decoded.rate)
        layout = {1: "mono", 2: "stereo"}.get(audio.channels, f"{audio.channels} ch")
        note = f"{clock(t0)}-{clock(t1)}, {seconds:.2f} s, {decoded.rate / 1000:g} kHz mono " \
               f"(from {audio.sample_rate / 1000:g} kHz {layout} {audio.codec})"
        details = {"duration": round(seconds, 6), "start": round(t0, 6), "end": round(t1, 6),
                   "sample_rate": decoded.rate, "channels": 1, "source_sample_rate": audio.sample_rate,
                   "source_channels": audio.channels, "codec": audio.codec, "format": opts.format,
                   "audio_tokens": tokens}
        items.append(MediaItem(source=audio.source.label, kind="audio", mime=f"audio/{opts.format}",
                               transport="inline", data=data, visual_tokens=tokens, notes=[note],
                               details=details))
    return items


def prepare_audio(audio: AudioInput, opts: AudioOptions, encoder: Optional[str]) -> list[MediaItem]:
    """Check the caps, decode, cut and split one track into items ready to send."""
    check_span(audio, opts)
    decoded = decode(audio, opts.rate, opts.start, opts.end, opts.max_seconds)
    _check_length(decoded.seconds, opts, audio.source.label)
    return audio_items(audio, decoded, opts, encoder)


def quiet_cuts(samples: "np.ndarray", rate: int, max_samples: int, search: float = 0.25) -> list[tuple[int, int]]:
    """Ranges of at most `max_samples`, each cut at the quietest 100 ms of the last `search` share of
    its room, so words are not split where a pause is near."""
    import numpy as np

    window = max(1, rate // 10)
    cuts, begin, total = [], 0, len(samples)
    while total - begin > max_samples:
        low = begin + int(max_samples * (1 - search))
        high = begin + max_samples
        span = samples[low:high]
        usable = len(span) // window * window
        if usable < window:
            cut = high
        else:
            energy = np.square(span[:usable].astype(np.float64)).reshape(-1, window).sum(axis=1)
            cut = low + int(np.argmin(energy)) * window + window // 2
        cuts.append((begin, cut))
        begin = cut
    cuts.append((begin, total))
    return cuts
