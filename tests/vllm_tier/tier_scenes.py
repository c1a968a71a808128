"""Synthetic scenes of the trained tier models: one coloured rectangle on a noisy grey ground.

Pure numpy and Pillow, so both the trainer (tier venv) and the tests (mmcli's python) draw
the same scenes from the same seeds.  A scene is 224x224 (a multiple of 28 and of 32, so no
resize in the processor); the rectangle's edges lie on a 28 px grid, 2-5 cells a side.
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

