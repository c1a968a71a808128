"""Pure: parsed items -> detections in original-image pixels, with a warning for every repair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .coords import clean_box, clean_point, space_doubts, space_for, to_original, xy_order
from .labels import clean_label
from .parse import Parsed, RawItem


@dataclass
class Detection:
    """One box ([x1, y1, x2, y2]) or point ([x, y]) in whole pixels of the original image."""

    kind: str  # box | point
    coords: tuple[int, ...]
    label: str = ""
    extra: dict = field(default_factory=dict)
    model_coords: tuple[float, ...] = ()
    exact: tuple[float, ...] = ()  # the same place before rounding to whole pixels

    @property
    def bbox(self) -> Optional[tuple[int, ...]]:
        """The box (x1, y1, x2, y2) in original pixels; None for a point."""
        return self.coords if self.kind == "box" else None

    @property
    def point(self) -> Optional[tuple[int, ...]]:
        """The point (x, y) in original pixels; None for a box."""
        return self.coords if self.kind == "point" else None

    def to_dict(self) -> dict:
        """The detection as JSON-ready data."""
        key = "bbox" if self.kind == "box" else "point"
        data = {key: list(self.coords), "label": self.label, "model_coords": [_short(v) for v in self.model_coords]}
        if self.extra:
            data["extra"] = self.extra
        return data


@dataclass
class Grounded:
    """Every usable detection in one answer, and what had to be done to get them."""

    detections: list[Detection]
    space: str
    warnings: list[str] = field(default_factory=list)
    dropped: int = 0


def _short(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def ground(parsed: Parsed, space_name: str, sent: tuple[int, int], original: tuple[int, int]) -> Grounded:
    """Map every parsed item into original pixels: swap, clip and drop as needed, warning each time."""
    width, height = original
    result = Grounded([], space_name)
    doubts = _doubt(parsed.items, space_name, sent)
    if doubts:
        result.warnings.append(doubts)
    for number, item in enumerate(parsed.items, start=1):
        space = space_for(item.space or space_name, *sent)
        values = to_original(xy_order(item.values, item.order), space, width, height)
        cleaned = (clean_box(values, width, height) if item.kind == "box"
                   else clean_point(values, width, height))
        name = f"{item.kind} {number}" + (f" ({_quoted(item.label)})" if item.label else "")
        result.warnings.extend(f"{name}: {note}" for note in cleaned.notes)
        if cleaned.coords is None:
            result.dropped += 1
            continue
        result.detections.append(Detection(item.kind, cleaned.coords, item.label, item.extra, item.values,
                                             cleaned.exact))
    result.warnings.extend(parse_warnings(parsed))
    return result


def _doubt(items: list[RawItem], space_name: str, sent: tuple[int, int]) -> Optional[str]:
    own = [xy_order(item.values, item.order) for item in items if item.space is None]
    return space_doubts(own, space_for(space_name, *sent)) if own else None


def parse_warnings(parsed: Parsed) -> list[str]:
    """Warnings about the answer as a whole: cut off, items that could not be read."""
    notes = []
    if parsed.truncated:
        recovered = len(parsed.items)
        lost = f"; {parsed.incomplete} incomplete item dropped" if parsed.incomplete else ""
        notes.append(f"the answer was cut off; {recovered} complete item(s) recovered{lost}")
    if parsed.skipped:
        reasons = "; ".join(dict.fromkeys(parsed.notes))
        notes.append(f"{parsed.skipped} item(s) could not be read and were skipped: {reasons}")
    return notes


def _quoted(label: str) -> str:
    return repr(clean_label(label, 40))
