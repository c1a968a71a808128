"""Video fixtures made in the tests with cv2.VideoWriter, plus checks that each one is what it claims.

Every frame carries its own index as a row of black/white blocks, so a test can tell exactly which
source frame a sent frame came from. Rotation and variable frame rate are written into the MP4
boxes (OpenCV's writer cannot set them); broken files are made by cutting or patching good ones.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

BITS = 10
RED = (0, 0, 255)  # BGR
MOV_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
# tkhd display matrices (16.16 fixed point): turn the stored picture 90 degrees clockwise to show it.
ROTATE_90_MATRIX = (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)


def frame_picture(index: int, width: int, height: int, *, texture: bool = False) -> np.ndarray:
    """A BGR frame whose top band spells `index` in binary; optional noise makes JPEGs realistically big."""
    if texture:
        rng = np.random.default_rng(index)
        frame = rng.integers(40, 216, (height, width, 3), dtype=np.uint8)
    else:
        frame = np.full((height, width, 3), 128, np.uint8)
    block = width // BITS
    for bit in range(BITS):
        value = 255 if index >> bit & 1 else 0
        frame[: height // 4, bit * block:(bit + 1) * block] = value
    return frame


def read_index(bgr: np.ndarray) -> int:
    """The index a frame spells (see frame_picture), read from the centres of its blocks."""
    height, width = bgr.shape[:2]
    gray = bgr.mean(axis=2)
    block = width / BITS
    row = int(height / 8)
    return sum(1 << bit for bit in range(BITS) if gray[row, int((bit + 0.5) * block)] > 128)


def write_clip(path: Path, *, frames: int = 50, fps: float = 25.0, size: tuple[int, int] = (320, 240),
               fourcc: str = "mp4v", texture: bool = False, picture=None) -> Path:
    """Write `frames` frames numbered 0..frames-1 with cv2.VideoWriter."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write {fourcc} to {path}"
    for i in range(frames):
        writer.write(picture(i) if picture else frame_picture(i, width, height, texture=texture))
    writer.release()
    return path


# ---------------------------------------------------------------- MP4 box surgery


def _parse(data: bytes, start: int, end: int) -> list:
    boxes = []
    while start < end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        body = data[start + 8:start + size]
        boxes.append([kind, _parse(data, start + 8, start + size) if kind in MOV_CONTAINERS else body])
        start += size
    return boxes


def _build(boxes: list) -> bytes:
    out = b""
    for kind, body in boxes:
        payload = _build(body) if isinstance(body, list) else body
        out += struct.pack(">I4s", len(payload) + 8, kind) + payload
    return out


def _find(boxes: list, kind: bytes) -> list:
    found = []
    for box in boxes:
        if box[0] == kind:
            found.append(box)
        if isinstance(box[1], list):
            found += _find(box[1], kind)
    return found


def _set_u32(box: list, offset: int, value: int) -> None:
    box[1] = box[1][:offset] + struct.pack(">I", value) + box[1][offset + 4:]


def make_rotated(path: Path, *, upright: tuple[int, int] = (240, 320), frames: int = 8) -> Path:
    """A portrait clip stored landscape with a 90-degree display matrix, as phones write them.

    The upright picture has a red square in its top-left corner.
    """
    width, height = upright

    def stored(i: int) -> np.ndarray:
        picture = frame_picture(i, width, height)
        picture[: height // 8, : width // 8] = RED
        return cv2.rotate(picture, cv2.ROTATE_90_COUNTERCLOCKWISE)

    write_clip(path, frames=frames, size=(height, width), picture=stored)
    data = bytearray(path.read_bytes())
    matrix_at = data.find(b"tkhd") - 4 + 48  # box header 8 + fields before the matrix 40
    data[matrix_at:matrix_at + 36] = struct.pack(">9i", *ROTATE_90_MATRIX)
    path.write_bytes(bytes(data))
    return path


def make_vfr(path: Path, runs: list[tuple[int, float]], size: tuple[int, int] = (320, 240)) -> Path:
    """A variable-frame-rate MP4: `runs` of (frame count, seconds per frame), e.g. [(40, 0.04), (20, 0.2)]."""
    total = sum(count for count, _ in runs)
    write_clip(path, frames=total, fps=25.0, size=size)
    data = path.read_bytes()
    boxes = _parse(data, 0, len(data))
    [mdhd], [mvhd], [tkhd], [stts] = (_find(boxes, k) for k in (b"mdhd", b"mvhd", b"tkhd", b"stts"))
    timescale = struct.unpack(">I", mdhd[1][12:16])[0]
    movie_scale = struct.unpack(">I", mvhd[1][12:16])[0]
    entries = [(count, round(step * timescale)) for count, step in runs]
    stts[1] = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", c, d) for c, d in entries)
    media_duration = sum(c * d for c, d in entries)
    movie_duration = round(media_duration / timescale * movie_scale)
    _set_u32(mdhd, 16, media_duration)
    _set_u32(mvhd, 16, movie_duration)
    _set_u32(tkhd, 20, movie_duration)
    for elst in _find(boxes, b"elst"):
        _set_u32(elst, 8, movie_duration)
    path.write_bytes(_build(boxes))
    return path


def make_undecodable(path: Path) -> Path:
    """An MP4 that opens but whose codec (AV1, as far as the decoder can tell) yields no frame."""
    write_clip(path, frames=6)
    data = bytearray(path.read_bytes())
    entry = data.find(b"mp4v", data.find(b"stsd"))
    data[entry:entry + 4] = b"av01"
    esds = data.find(b"esds")
    tag = data.find(b"\x04", esds + 12)  # DecoderConfigDescriptor
    length_end = tag + 1
    while data[length_end] & 0x80:
        length_end += 1
    data[length_end + 1] = 0xC0  # an object type no decoder claims
    path.write_bytes(bytes(data))
    return path


def make_without_video(path: Path) -> Path:
    """An MP4 whose only track is declared as sound: a container with no video stream."""
    write_clip(path, frames=6)
    data = bytearray(path.read_bytes())
    handler = data.find(b"vide", data.find(b"hdlr"))
    data[handler:handler + 4] = b"soun"
    path.write_bytes(bytes(data))
    return path


def make_avi_claiming(path: Path, claimed_frames: int, frames: int = 50) -> Path:
    """An MJPG AVI whose headers claim `claimed_frames` frames while it holds `frames`."""
    write_clip(path, frames=frames, fourcc="MJPG")
    data = bytearray(path.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    data[avih + 24:avih + 28] = struct.pack("<I", claimed_frames)
    data[strh + 40:strh + 44] = struct.pack("<I", claimed_frames)
    path.write_bytes(bytes(data))
    return path


def make_truncated(path: Path) -> Path:
    """The first half of an MP4 (its index, written last, is gone)."""
    write_clip(path, frames=30)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_8k(path: Path) -> Path:
    """A one-frame 7680x4320 Motion JPEG AVI."""
    return write_clip(path, frames=1, size=(7680, 4320), fourcc="MJPG",
                      picture=lambda i: np.zeros((4320, 7680, 3), np.uint8))


def frame_times(path: Path) -> list[float]:
    """Every frame's timestamp in seconds, as OpenCV reports it."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    times = []
    while cap.grab():
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    cap.release()
    return times


# ---------------------------------------------------------------- the fixtures are what they claim


@pytest.mark.parametrize("fourcc", ["mp4v", "MJPG"])
def test_frames_carry_their_index(tmp_path, fourcc):
    path = write_clip(tmp_path / f"clip.{'mp4' if fourcc == 'mp4v' else 'avi'}", frames=12, fourcc=fourcc)
    cap = cv2.VideoCapture(str(path))
    indices = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        indices.append(read_index(frame))
    assert indices == list(range(12))


def test_rotated_clip_reports_its_rotation(tmp_path):
    cap = cv2.VideoCapture(str(make_rotated(tmp_path / "phone.mp4")))
    assert cap.get(cv2.CAP_PROP_ORIENTATION_META) == 90
    ok, frame = cap.read()  # OpenCV applies the rotation itself by default
    assert ok and frame.shape[:2] == (320, 240)
    assert tuple(frame[5, 5]) == pytest.approx(RED, abs=40)


def test_vfr_clip_has_variable_timestamps(tmp_path):
    times = frame_times(make_vfr(tmp_path / "vfr.mp4", [(20, 0.04), (10, 0.2)]))
    assert len(times) == 30
    steps = np.diff(times)
    assert steps[:19] == pytest.approx(0.04, abs=1e-3) and steps[-9:] == pytest.approx(0.2, abs=1e-3)


def test_avi_header_can_lie_about_its_length(tmp_path):
    path = make_avi_claiming(tmp_path / "lies.avi", claimed_frames=20, frames=50)
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 20
    assert len(frame_times(path)) == 50


def test_broken_files_break_as_intended(tmp_path):
    undecodable = cv2.VideoCapture(str(make_undecodable(tmp_path / "av1.mp4")))
    assert undecodable.isOpened() and not undecodable.grab()
    assert not cv2.VideoCapture(str(make_without_video(tmp_path / "sound.mp4"))).isOpened()
    assert not cv2.VideoCapture(str(make_truncated(tmp_path / "cut.mp4"))).isOpened()
