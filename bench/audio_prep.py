"""Audio preparation: a 10-minute 44.1 kHz stereo MP3 to 16 kHz mono WAV bytes, side by side in one run.

    python bench/audio_prep.py [--runs N] [--audio PATH]

Compares mmcli's path (PyAV decode + resample + mono + WAV), the ffmpeg command line
(`ffmpeg -i x.mp3 -ac 1 -ar 16000 -f wav -`, the bench extra's imageio-ffmpeg) and
`librosa.load(path, sr=16000)` (+ WAV encoding). Targets: within 1.3x of ffmpeg, at least 3x faster
than librosa. Also checks that the three agree on the length.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from image_prep import median_seconds  # noqa: E402 - bench/ is the script's own folder

SECONDS = 600.0


def make_mp3(directory: Path) -> Path:
    """A 10-minute stereo MP3 at 44.1 kHz: speech-like noise on the left, a slow sweep on the right."""
    import av
    import numpy as np

    rate, n = 44100, int(SECONDS * 44100)
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    envelope = np.clip(np.sin(2 * np.pi * 2 * t), 0, None) ** 2
    left = 0.3 * envelope * np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    right = 0.3 * np.sin(2 * np.pi * (200 * t + 0.5 * t * t))
    data = np.stack([left, right]).astype(np.float32)
    path = directory / "talk-10min.mp3"
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="stereo")
        stream.bit_rate = 128000
        for i in range(0, n, 1152):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i:i + 1152]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def mmcli_path(path: Path) -> bytes:
    """What `mmcli ask talk.mp3 ...` does before building the request."""
    from mmcli.media.audio import AudioOptions, decode, encode, open_audio
    from mmcli.media.sources import open_source

    audio = open_audio(open_source(str(path), fetch=None))
    decoded = decode(audio, 16000, max_seconds=AudioOptions().max_seconds)
    return encode(decoded.samples, 16000, "wav")


def ffmpeg_path(path: Path) -> bytes:
    """The ffmpeg command line, its WAV read from a pipe."""
    import imageio_ffmpeg

    argv = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000",
            "-f", "wav", "-"]
    return subprocess.run(argv, check=True, capture_output=True).stdout


def librosa_path(path: Path) -> bytes:
    """librosa.load resampled to 16 kHz mono, then the same WAV encoding."""
    import librosa

    from mmcli.media.audio import encode

    samples, _ = librosa.load(str(path), sr=16000)
    return encode(samples, 16000, "wav")


def main(argv: list[str] | None = None) -> int:
    """Run the three side by side and print medians, ratios and whether the targets hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--audio", type=Path, help="an audio file instead of the generated 10-minute MP3")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.audio or make_mp3(Path(tmp))
        results = {name: median_seconds(lambda fn=fn: fn(path), args.runs)
                   for name, fn in (("mmcli", mmcli_path), ("ffmpeg CLI", ffmpeg_path), ("librosa", librosa_path))}
    for name, (seconds, wav) in results.items():
        print(f"{name:12s} {seconds * 1000:8.0f} ms   {len(wav):,} bytes of WAV ({(len(wav) - 44) / 32000:.2f} s)")
    mmcli, ffmpeg, librosa = (results[k][0] for k in ("mmcli", "ffmpeg CLI", "librosa"))
    vs_ffmpeg, vs_librosa = mmcli / ffmpeg, librosa / mmcli
    print(f"mmcli / ffmpeg CLI = {vs_ffmpeg:.2f}x (target <= 1.3x: {'ok' if vs_ffmpeg <= 1.3 else 'MISSED'})")
    print(f"librosa / mmcli    = {vs_librosa:.2f}x (target >= 3x: {'ok' if vs_librosa >= 3 else 'MISSED'})")
    return 0 if vs_ffmpeg <= 1.3 and vs_librosa >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
