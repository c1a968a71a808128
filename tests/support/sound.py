"""Sound fixtures written by PyAV (tones, chirps, speech-like noise in every common container),
bad ones for the error corpus, and helpers that decode the audio a request carried."""

from __future__ import annotations

import base64
import io
import struct
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np

# name -> (container format, codec, the codec's input sample format, sample rate)
CONTAINERS = {
    "wav": ("wav", "pcm_s16le", "s16", 44100),
    "flac": ("flac", "flac", "s16", 44100),
    "mp3": ("mp3", "libmp3lame", "fltp", 44100),
    "ogg": ("ogg", "libopus", "flt", 48000),
    "m4a": ("ipod", "aac", "fltp", 44100),
    "webm": ("webm", "libopus", "flt", 48000),
}
LOSSLESS = ("wav", "flac")


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp(seconds: float, rate: int, f0: float = 200.0, f1: float = 3000.0, amplitude: float = 0.5) -> np.ndarray:
    """A linear sweep from f0 to f1: every instant sounds different, so a shifted cut shows."""
    t = np.arange(int(round(seconds * rate))) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


def speechlike(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Noise shaped into syllables (4 per second) with short pauses, like speech to an encoder."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    envelope = np.clip(np.sin(2 * np.pi * 2 * t), 0, None) ** 2
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    return (0.4 * envelope * noise / max(1e-9, np.abs(noise).max())).astype(np.float32)


def write_audio(path: Path, left: np.ndarray, rate: int, kind: str, right: np.ndarray | None = None) -> Path:
    """Write a stereo (or mono when `right` is None and kind allows) file of `kind` with PyAV."""
    fmt, codec, sample_fmt, _ = CONTAINERS[kind]
    channels = [left] if right is None else [left, right]
    layout = "mono" if len(channels) == 1 else "stereo"
    data = np.stack(channels).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        size = stream.codec_context.frame_size or 1024
        for i in range(0, data.shape[1], size):
            frame = _frame(data[:, i:i + size], sample_fmt, layout, rate)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _frame(chunk: np.ndarray, sample_fmt: str, layout: str, rate: int) -> av.AudioFrame:
    if sample_fmt == "s16":
        pcm = (np.clip(chunk, -1, 1) * 32767).round().astype(np.int16)
        array = pcm.T.reshape(1, -1).copy()  # packed: interleaved channels in one plane
    elif sample_fmt == "flt":
        array = np.ascontiguousarray(chunk.T.reshape(1, -1))
    else:
        array = np.ascontiguousarray(chunk)
    frame = av.AudioFrame.from_ndarray(array, format=sample_fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def reference(signal: np.ndarray, rate: int, target: int = 16000) -> np.ndarray:
    """A reference resample of `signal` (scipy's polyphase filter), for comparison with what was sent."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(signal.astype(np.float64), target // g, rate // g).astype(np.float32)


def audio_parts(request_json: Any) -> list[dict]:
    """The audio content parts of a chat request, in order."""
    content = request_json["messages"][-1]["content"]
    return [p for p in content if isinstance(p, dict) and p.get("type") in ("input_audio", "audio_url", "audio")]


def part_bytes(part: dict) -> bytes:
    """The audio bytes one part carries, whatever its shape."""
    if part["type"] == "input_audio":
        return base64.b64decode(part["input_audio"]["data"], validate=True)
    url = part["audio_url"] if part["type"] == "audio" else part["audio_url"]["url"]
    head, _, payload = url.partition(",")
    assert head.startswith("data:audio/") and head.endswith(";base64"), head
    return base64.b64decode(payload, validate=True)


def decode_sent(data: bytes) -> tuple[np.ndarray, int, int]:
    """(float samples of channel 0, sample rate, channel count) of WAV or FLAC bytes, decoded by PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray() for frame in container.decode(stream)]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        name = stream.codec_context.name
    pcm = np.concatenate(chunks, axis=1)
    scale = 32768.0 if pcm.dtype == np.int16 else (2.0 ** 31 if pcm.dtype == np.int32 else 1.0)
    if name == "flac" and pcm.dtype == np.int32:
        scale = 2.0 ** 31 if np.abs(pcm).max() > 2 ** 16 else 32768.0
    return pcm[0].astype(np.float32) / scale, rate, channels


def best_lag(ref: np.ndarray, got: np.ndarray, max_lag: int = 240) -> int:
    """The shift (samples) that lines `got` up best with `ref` (lossy codecs add a little delay)."""
    n = min(len(ref), len(got)) - 2 * max_lag
    window = ref[max_lag:max_lag + n]
    return max(range(-max_lag, max_lag + 1), key=lambda lag: float(np.dot(window, got[max_lag + lag:max_lag + lag + n])))


# ------------------------------------------------------------------ bad files


def truncated(path: Path, source: Path, keep: float = 0.5) -> Path:
    """The first part of `source` only, as if a download stopped."""
    data = source.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def flac_claiming(path: Path, source: Path, total_samples: int) -> Path:
    """A copy of a FLAC file whose STREAMINFO claims `total_samples` (0: unknown)."""
    data = bytearray(source.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    info = 8  # fLaC + block header
    bits = int.from_bytes(data[info + 10:info + 18], "big")  # rate 20, channels 3, bps 5, samples 36
    bits = (bits & ~((1 << 36) - 1)) | total_samples
    data[info + 10:info + 18] = bits.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit WAV of float samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes())
    return buffer.getvalue()


def silent_video(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 with pictures and no sound track."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20 % 255, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def riff_header(rate: int, frames: int) -> bytes:
    """The 44-byte header of a mono 8-bit WAV holding `frames` samples."""
    return (b"RIFF" + struct.pack("<I", 36 + frames) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8) + b"data" + struct.pack("<I", frames))
