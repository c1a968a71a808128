"""Synthetic scenes and clips of the trained tier models: one coloured rectangle on a noisy grey ground.

Numpy draws them (OpenCV writes and reads the clips), so both the trainer (tier venv) and the
tests (mmcli's python) draw the same scenes from the same seeds.  A scene is 224x224 (a multiple
of 28 and of 32, so no resize in the processor); the rectangle's edges lie on a 28 px grid, 2-5
cells a side.  A clip is four such frames in which the box moves and changes colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 224
CELL = 28
CELLS = SIZE // CELL
COLOURS = {"red": (220, 35, 35), "green": (35, 190, 35), "blue": (35, 35, 220),
           "yellow": (225, 215, 30)}
# Held-out scenes of the tests come from seeds at and above this; training uses seeds below.
HELD_OUT_SEED = 1_000_000


@dataclass(frozen=True)
class Scene:
    """One scene: the pixels and the truth."""

    pixels: np.ndarray  # SIZE x SIZE x 3, uint8, RGB
    colour: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in scene pixels (x2, y2 exclusive)

    def scaled_box(self, scale: float) -> tuple[float, float, float, float]:
        """The box in the pixels of the scene enlarged ``scale`` times."""
        return tuple(v * scale for v in self.box)  # type: ignore[return-value]


def _rectangle(rng: np.random.Generator) -> tuple[int, int, int, int]:
    width, height = (int(rng.integers(2, 6)) for _ in range(2))
    left = int(rng.integers(0, CELLS - width + 1))
    top = int(rng.integers(0, CELLS - height + 1))
    return left * CELL, top * CELL, (left + width) * CELL, (top + height) * CELL


def scene(rng: np.random.Generator) -> Scene:
    """A new random scene drawn with ``rng``."""
    level = float(rng.uniform(60, 200))
    ground = rng.normal(level, 10, (SIZE, SIZE, 1)).repeat(3, axis=2)
    colour = str(rng.choice(sorted(COLOURS)))
    x1, y1, x2, y2 = _rectangle(rng)
    fill = np.array(COLOURS[colour], dtype=np.float64)
    ground[y1:y2, x1:x2] = fill + rng.normal(0, 6, (y2 - y1, x2 - x1, 3))
    pixels = np.clip(ground, 0, 255).round().astype(np.uint8)
    return Scene(pixels=pixels, colour=colour, box=(x1, y1, x2, y2))


def held_out(index: int) -> Scene:
    """Held-out scene number ``index`` (never seen in training)."""
    return scene(np.random.default_rng(HELD_OUT_SEED + index))


def enlarged(pixels: np.ndarray, scale: int) -> np.ndarray:
    """The scene ``scale`` times larger, each pixel a block (an area resize gives it back)."""
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)



# Short clips: the box moves (and changes colour) between frame pairs.  Qwen's vision tower reads
# a video two frames at a time (temporal patch 2, one group of tokens per pair), so the box holds
# still within each pair and "the last frame" is the last pair's box.
PAIR = 2
CLIP_FRAMES = 4
CLIP_FPS = 2.0  # mmcli samples 2 frames a second by default, so every frame of the clip is sent
HELD_OUT_CLIP_SEED = HELD_OUT_SEED + 50_000


@dataclass(frozen=True)
class Clip:
    """One clip: the frames (RGB, SIZE x SIZE) and each frame's truth."""

    frames: list[np.ndarray]
    colours: list[str]
    boxes: list[tuple[int, int, int, int]]

    @property
    def last(self) -> tuple[str, tuple[int, int, int, int]]:
        """The colour and box of the last frame."""
        return self.colours[-1], self.boxes[-1]


def clip(rng: np.random.Generator, frames: int = CLIP_FRAMES) -> Clip:
    """A new random clip: one ground level, a box that moves and changes colour at every pair."""
    level = float(rng.uniform(60, 200))
    pictures, colours, boxes = [], [], []
    colour, box = None, None
    for _ in range(frames // PAIR):
        colour = str(rng.choice(sorted(set(COLOURS) - {colour})))
        moved = _rectangle(rng)
        while moved == box:
            moved = _rectangle(rng)
        box = moved
        ground = rng.normal(level, 10, (SIZE, SIZE, 1)).repeat(3, axis=2)
        x1, y1, x2, y2 = box
        ground[y1:y2, x1:x2] = np.array(COLOURS[colour], dtype=np.float64) + rng.normal(0, 6, (y2 - y1, x2 - x1, 3))
        picture = np.clip(ground, 0, 255).round().astype(np.uint8)
        pictures += [picture] * PAIR
        colours += [colour] * PAIR
        boxes += [box] * PAIR
    return Clip(frames=pictures, colours=colours, boxes=boxes)


def held_out_clip(index: int) -> Clip:
    """Held-out clip number ``index`` (never seen in training)."""
    return clip(np.random.default_rng(HELD_OUT_CLIP_SEED + index))


def write_clip(path, drawn: Clip, fps: float = CLIP_FPS) -> None:
    """The clip as an MPEG-4 (mp4v) file, the kind OpenCV writes everywhere."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (SIZE, SIZE))
    if not writer.isOpened():
        raise OSError(f"cannot write an mp4v video to {path}")
    for frame in drawn.frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def sent_frames(drawn: Clip, folder, quality: int) -> list[bytes]:
    """The JPEG frames mmcli sends for the clip: written as mp4v, decoded, re-encoded at ``quality``."""
    import cv2

    path = f"{folder}/clip.mp4"
    write_clip(path, drawn)
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    sent = []
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            sent.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    finally:
        capture.release()
    return sent
