"""Video probing and decoding: one sequential pass, only wanted frames converted, timestamps checked.

Container frame counts and rates are hints, never facts: every frame read reports its own
timestamp, and the caller re-plans when the hints turn out wrong. Resizing and encoding run on a
thread pool (OpenCV releases the GIL) while the decoder keeps reading.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import MediaError, UsageError
from .frames import Sampling, plausible
from .image import encode_bgr, resize_exact
from .jpeg import JPEG_QUALITY

if TYPE_CHECKING:
    import numpy as np

    from .sources import Source

# Larger frames (8K and up) cost seconds each to decode and gigabytes to hold; refuse them up front.
MAX_FRAME_PIXELS = 4096 * 4096
# A start later than this is reached by a verified seek instead of reading every frame before it.
SEEK_FROM = 5.0
SEEK_MARGIN = 1.0
_CODECS = {"av01": "AV1", "h264": "H.264", "avc1": "H.264", "hevc": "HEVC", "hvc1": "HEVC", "hev1": "HEVC",
           "vp90": "VP9", "vp80": "VP8", "fmp4": "MPEG-4", "mp4v": "MPEG-4", "mjpg": "Motion JPEG"}
_ROTATE_CODES = {90: "ROTATE_90_CLOCKWISE", 180: "ROTATE_180", 270: "ROTATE_90_COUNTERCLOCKWISE"}
ProgressFn = Callable[[float], None]


@dataclass
class VideoInput:
    """A video that opened and decoded: its displayed size, rotation and what its container claims."""

    label: str
    path: Path
    mime: str
    size: int
    width: int  # as displayed, rotation applied
    height: int
    rotation: int  # degrees clockwise to turn stored frames upright
    codec: str
    fps: Optional[float]  # the container's claims, None when implausible
    frame_count: Optional[int]
    origin: float = 0.0  # timestamp of the first frame; reported times start at 0
    owned: bool = False  # a temporary copy (stdin, download), removed by discard()

    @property
    def declared_duration(self) -> Optional[float]:
        """Time of the last frame according to the container, if it said anything plausible."""
        if self.fps is None or self.frame_count is None:
            return None
        return (self.frame_count - 1) / self.fps

    def discard(self) -> None:
        """Remove the temporary copy, if this video has one."""
        if self.owned:
            with suppress(FileNotFoundError):
                self.path.unlink()
            self.owned = False


def codec_name(fourcc: str) -> str:
    """A readable codec name for a FOURCC ('av01' -> 'AV1')."""
    return _CODECS.get(fourcc.lower(), fourcc.strip() or "unknown")


def _cv2():
    import cv2

    # FFmpeg's own log lines would break the one-line error contract; mmcli reports failures itself.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def _capture(path: Path):
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if cap.isOpened():
        # Rotation is applied to the small resized frame instead of every full-size one.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    return cap


def materialize(source: "Source") -> tuple[Path, bool]:
    """A path OpenCV can open: the file itself, or a temporary copy of in-memory data (owned)."""
    if source.path is not None:
        return source.path, False
    fd, name = tempfile.mkstemp(prefix="mmcli-video-", suffix="." + source.sniffed.format)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read())
    path = Path(name)
    atexit.register(lambda: path.unlink(missing_ok=True))  # backstop; discard() normally removes it
    return path, True


def open_video(source: "Source") -> VideoInput:
    """Open a video and decode its first two frames, so no later step can fail on the input itself."""
    path, owned = materialize(source)
    try:
        return _probe(path, source, owned)
    except MediaError:
        if owned:
            path.unlink(missing_ok=True)
        raise


def _probe(path: Path, source: "Source", owned: bool) -> VideoInput:
    cv2 = _cv2()
    label = source.label
    cap = _capture(path)
    if not cap.isOpened():
        raise MediaError("cannot read video", "no video stream, or a container the bundled decoder cannot open",
                         where=label, hint="the file may be truncated or damaged; check that it plays")
    try:
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > MAX_FRAME_PIXELS:
            raise MediaError("video resolution too high", f"{width}x{height} is over the limit of "
                             f"{MAX_FRAME_PIXELS / 1e6:.1f} megapixels per frame", where=label,
                             hint="downscale it first, e.g. ffmpeg -i IN -vf scale=-2:2160 OUT.mp4")
        first = _first_frame(cap, fourcc, label)
        origin = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not cap.grab():
            raise MediaError("video has a single frame", where=label,
                             hint="send it as an image instead: extract the frame and use mmcli ask")
        height, width = first.shape[:2]  # the decoded frame is the truth, not the header
        fps, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
        rotation = int(round(cap.get(cv2.CAP_PROP_ORIENTATION_META))) % 360
    finally:
        cap.release()
    rotation = rotation if rotation in _ROTATE_CODES else 0
    shown_w, shown_h = (height, width) if rotation in (90, 270) else (width, height)
    trusted = plausible(fps, count)
    return VideoInput(label=label, path=path, mime=source.sniffed.mime, size=path.stat().st_size,
                      width=shown_w, height=shown_h, rotation=rotation, codec=codec_name(fourcc),
                      fps=float(fps) if trusted else None, frame_count=int(count) if trusted else None,
                      origin=origin, owned=owned)


def _first_frame(cap, fourcc: str, label: str) -> "np.ndarray":
    ok = cap.grab()
    frame = cap.retrieve()[1] if ok else None
    if frame is None:
        name = codec_name(fourcc)
        hint = ("this OpenCV build cannot decode AV1; re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4"
                if name == "AV1" else "the file may be damaged, or use a codec the bundled decoder cannot "
                "read; re-encode it to H.264")
        raise MediaError("cannot decode video", f"no frame of its {name} stream could be decoded",
                         where=label, hint=hint)
    return frame


@dataclass(frozen=True)
class FrameFormat:
    """How every sampled frame is sent: its displayed size and encoding."""

    height: int
    width: int
    quality: int = JPEG_QUALITY
    lossless: bool = False


@dataclass
class DecodeResult:
    """Encoded frames (one per target, in order) and what the pass saw of the stream."""

    data: list[bytes]
    times: list[float]  # each sent frame's own timestamp
    seen: list[float] = field(default_factory=list)  # timestamps of every frame read
    reached_end: bool = False
    complete: bool = True  # every target was found
    overran: bool = False  # frames went on past the last expected one


class _Clock:
    """Frame timestamps from the decoder, kept increasing when a stream's are missing or repeat."""

    def __init__(self, cap, origin: float, step: float) -> None:
        self.cap, self.origin, self.step = cap, origin, step
        self.last: Optional[float] = None

    def now(self) -> float:
        """The time of the frame just grabbed, in seconds from the first frame."""
        import cv2

        reported = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 - self.origin
        if self.last is not None and reported <= self.last:
            reported = self.last + self.step
        self.last = reported
        return reported


def decode(video: VideoInput, sampling: Sampling, fmt: FrameFormat, *, verify_end: bool,
           progress: Optional[ProgressFn] = None) -> DecodeResult:
    """Read the video once, converting only the frames the sampling wants; check the end when asked."""
    workers = max(1, os.cpu_count() or 1)
    in_flight = threading.BoundedSemaphore(2 * workers + 2)  # caps full-size frames held in memory
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmcli-frame") as pool:

        def submit(frame) -> Future:
            in_flight.acquire()
            future = pool.submit(_encode_frame, frame, fmt, video.rotation, video.label)
            future.add_done_callback(lambda _: in_flight.release())
            return future

        result, futures = _read_pass(video, sampling, submit, verify_end, progress)
        result.data = [f.result() for f in futures]
    return result


def _read_pass(video: VideoInput, sampling: Sampling, submit, verify_end: bool,
               progress: Optional[ProgressFn]) -> tuple[DecodeResult, list[Future]]:
    targets, tolerance = sampling.times, sampling.tolerance
    cap, clock, result = _open_at(video, targets[0] - tolerance)
    futures: list[Future] = []
    try:
        k = 0
        while k < len(targets) or verify_end:
            if not cap.grab():
                result.reached_end = True
                break
            now = clock.now()
            result.seen.append(now)
            if progress:
                progress(now)
            if k >= len(targets):
                result.overran = result.overran or now > targets[-1] + tolerance
                continue
            if now >= targets[k] - tolerance:
                frame = cap.retrieve()[1]
                if frame is None:
                    raise MediaError("cannot decode video", f"the frame at {now:.2f} s could not be decoded",
                                     where=video.label, hint="the file may be damaged")
                future = submit(frame)
                while k < len(targets) and now >= targets[k] - tolerance:
                    futures.append(future)
                    result.times.append(now)
                    k += 1
        result.complete = k == len(targets)
    finally:
        cap.release()
    return result, futures


def _open_at(video: VideoInput, first_target: float):
    import cv2

    step = 1.0 / (video.fps or 25.0)
    if first_target >= SEEK_FROM:
        cap = _capture(video.path)
        clock = _Clock(cap, video.origin, step)
        target_ms = (video.origin + first_target - SEEK_MARGIN) * 1000.0
        # Seeking is inexact: keep the landing point only if it is before the first wanted frame.
        if cap.set(cv2.CAP_PROP_POS_MSEC, target_ms) and cap.grab():
            landed = clock.now()
            if landed < first_target:
                return cap, clock, DecodeResult([], [], seen=[landed])
        cap.release()
    cap = _capture(video.path)
    return cap, _Clock(cap, video.origin, step), DecodeResult([], [])


def fetch_frame(video: VideoInput, time: float, fmt: FrameFormat) -> bytes:
    """The frame at `time` (a timestamp seen in an earlier pass), reached by a verified seek."""
    cap, clock, _ = _open_at(video, time - SEEK_MARGIN)
    try:
        while cap.grab():
            if clock.now() >= time - 1e-4:
                frame = cap.retrieve()[1]
                if frame is not None:
                    return _encode_frame(frame, fmt, video.rotation, video.label)
                break
    finally:
        cap.release()
    raise MediaError("cannot decode video", f"the frame at {time:.2f} s could not be read again",
                     where=video.label, hint="the file may be damaged")


def has_frame_after(video: VideoInput, seconds: float) -> bool:
    """Whether any frame is at or after `seconds` (a seek, then one frame read)."""
    import cv2

    cap = _capture(video.path)
    try:
        if not cap.set(cv2.CAP_PROP_POS_MSEC, (video.origin + seconds) * 1000.0):
            return True  # cannot tell cheaply: assume yes and let the full read decide
        return bool(cap.grab())
    finally:
        cap.release()


def scan_times(video: VideoInput, progress: Optional[ProgressFn] = None) -> list[float]:
    """Timestamps of every frame, read without converting any (for containers that cannot be trusted)."""
    cap = _capture(video.path)
    clock = _Clock(cap, video.origin, 1.0 / (video.fps or 25.0))
    times = []
    try:
        while cap.grab():
            times.append(clock.now())
            if progress:
                progress(times[-1])
    finally:
        cap.release()
    return times


def _encode_frame(frame: "np.ndarray", fmt: FrameFormat, rotation: int, label: str) -> bytes:
    import cv2

    height, width = (fmt.width, fmt.height) if rotation in (90, 270) else (fmt.height, fmt.width)
    small = resize_exact(frame, height, width)
    if rotation:
        small = cv2.rotate(small, getattr(cv2, _ROTATE_CODES[rotation]))
    return encode_bgr(small, fmt.lossless, fmt.quality, label)


def reencode(frames: list[bytes], fmt: FrameFormat, label: str) -> list[bytes]:
    """Already-sent frames again at another size or quality (used to fit a request-size limit)."""
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda data: _reencode_one(data, fmt, label), frames))


def _reencode_one(data: bytes, fmt: FrameFormat, label: str) -> bytes:
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise MediaError("cannot re-encode video frame", "the frame did not decode", where=label)
    return encode_bgr(resize_exact(pixels, fmt.height, fmt.width), fmt.lossless, fmt.quality, label)


def read_whole(video: VideoInput, limit: int) -> bytes:
    """The original file's bytes, refusing (before reading) files over `limit`."""
    if video.size > limit:
        raise UsageError("video too large to send as a file", f"{video.size / 1e6:.1f} MB is over the "
                         f"{limit / 1e6:.1f} MB left in the request", where=video.label,
                         hint="send sampled frames instead (--as frames or --as images), or raise --max-request-mb")
    return video.path.read_bytes()
