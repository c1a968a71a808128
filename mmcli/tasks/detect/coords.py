"""Pure coordinate math: the space a model answers in, and exact mapping to original-image pixels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# What --coords accepts; norm1024 is implied by PaliGemma's <locNNNN> tokens, never chosen by hand.
USER_SPACES = ("abs", "norm1000", "norm1")


@dataclass(frozen=True)
class Space:
    """A coordinate space: x runs over [0, width], y over [0, height]."""

    name: str
    width: float
    height: float


def space_for(name: str, sent_width: int, sent_height: int) -> Space:
    """The space called `name` for an image sent at sent_width x sent_height."""
    if name == "abs":
        return Space("abs", float(sent_width), float(sent_height))
    if name == "norm1000":
        return Space(name, 1000.0, 1000.0)
    if name == "norm1":
        return Space(name, 1.0, 1.0)
    if name == "norm1024":
        return Space(name, 1024.0, 1024.0)
    raise ValueError(f"unknown coordinate space {name!r}")


def to_original(values: tuple[float, ...], space: Space, width: int, height: int) -> tuple[float, ...]:
    """x, y pairs in `space` as pixels of the width x height original (no rounding, no clipping)."""
    sx, sy = width / space.width, height / space.height
    return tuple(v * (sx if i % 2 == 0 else sy) for i, v in enumerate(values))


def from_original(values: tuple[float, ...], space: Space, width: int, height: int) -> tuple[float, ...]:
    """The inverse of to_original: original pixels expressed in `space`."""
    sx, sy = space.width / width, space.height / height
    return tuple(v * (sx if i % 2 == 0 else sy) for i, v in enumerate(values))


def xy_order(values: tuple[float, ...], order: str) -> tuple[float, ...]:
    """Coordinates as (x, y, ...) pairs whatever order the model wrote them in (yxyx: Gemini, PaliGemma)."""
    if order.startswith("yx"):
        return tuple(v for pair in zip(values[1::2], values[0::2]) for v in pair)
    return tuple(values)


@dataclass
class Cleaned:
    """A box or point in whole original pixels, or None when it had to be dropped, with what was done."""

    coords: Optional[tuple[int, ...]]
    notes: list[str] = field(default_factory=list)
    exact: tuple[float, ...] = ()  # clipped, before rounding


# Coordinates this far outside the image (in original pixels) are noise from rounding, not worth a warning.
_SLACK = 0.5


def clean_box(box: tuple[float, float, float, float], width: int, height: int) -> Cleaned:
    """Swap inverted corners, clip to the image, round to whole pixels; drop boxes with no area left."""
    x1, y1, x2, y2 = box
    notes = []
    if x1 > x2 or y1 > y2:
        notes.append("inverted corners swapped")
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
    if x1 < -_SLACK or y1 < -_SLACK or x2 > width + _SLACK or y2 > height + _SLACK:
        notes.append("clipped to the image")
    x1, x2 = (min(max(v, 0.0), float(width)) for v in (x1, x2))
    y1, y2 = (min(max(v, 0.0), float(height)) for v in (y1, y2))
    rounded = (round(x1), round(y1), round(x2), round(y2))
    if rounded[2] <= rounded[0] or rounded[3] <= rounded[1]:
        outside = "clipped to the image" in notes and (x2 - x1 <= 0 or y2 - y1 <= 0)
        notes.append("dropped: outside the image" if outside else "dropped: zero area")
        return Cleaned(None, notes)
    return Cleaned(rounded, notes, (x1, y1, x2, y2))


def clean_point(point: tuple[float, float], width: int, height: int) -> Cleaned:
    """Clip a point to the image and round it to whole pixels."""
    x, y = point
    notes = []
    if x < -_SLACK or y < -_SLACK or x > width + _SLACK or y > height + _SLACK:
        notes.append("clipped to the image")
    x, y = min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))
    return Cleaned((round(x), round(y)), notes, (x, y))


def space_doubts(all_values: list[tuple[float, ...]], space: Space) -> Optional[str]:
    """A hint when the numbers (x, y ordered) look like another space than the one assumed."""
    flat = [abs(v) for values in all_values for v in values]
    if not flat:
        return None
    top = max(flat)
    # How far past its own range the furthest coordinate reaches, per axis.
    reach = max(max((abs(v) / space.width for values in all_values for v in values[0::2]), default=0.0),
                max((abs(v) / space.height for values in all_values for v in values[1::2]), default=0.0))
    if space.name != "norm1" and top <= 1.0 and any(v % 1 for v in flat):
        return "every coordinate is between 0 and 1; if the model answered in fractions, pass --coords norm1"
    if space.name == "abs" and reach > 1.05 and top <= 1000:
        return (f"coordinates reach {top:g}, beyond the {space.width:g}x{space.height:g} image that was sent; "
                "if the model answered on a 0..1000 scale, pass --coords norm1000")
    if space.name in ("norm1000", "norm1024") and reach > 1.05:
        return (f"coordinates reach {top:g}, beyond the 0..{space.width:g} scale; "
                "if the model answered in pixels of the image it saw, pass --coords abs")
    if space.name == "norm1" and reach > 1.05:
        return f"coordinates reach {top:g}, beyond the 0..1 range; pass --coords norm1000 or abs"
    return None
