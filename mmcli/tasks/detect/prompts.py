"""The grounding prompt each model family was trained on, and the coordinate space it answers in."""

from __future__ import annotations

from typing import Optional

from .coords import USER_SPACES

_SPACE_WORDS = {
    "norm1000": "normalised to 0..1000 (0,0 is the top-left corner, 1000,1000 the bottom-right)",
    "norm1": "as fractions of the image size from 0 to 1 (0,0 is the top-left corner, 1,1 the bottom-right)",
}


def default_space(box_convention: str, override: Optional[str]) -> str:
    """The space answers are read in: --coords when given, else the family's convention."""
    if override is not None:
        if override not in USER_SPACES:
            raise ValueError(f"unknown coordinate space {override!r}")
        return override
    return box_convention


def grounding_prompt(family: str, target: str, *, points: bool, space: str,
                     sent_size: Optional[tuple[int, int]] = None) -> str:
    """The prompt that asks `family` for boxes (or points) around `target`."""
    target = " ".join(target.split())
    if family in ("qwen2.5-vl", "qwen3-vl"):
        # The wording these models were trained with; their coordinate space is built in.
        if points:
            return f"Locate {target}, output its point coordinates using JSON format."
        return f"Locate {target}, output its bbox coordinates using JSON format."
    if family == "qwen2-vl" and not points:
        return (f"Find <|object_ref_start|>{target}<|object_ref_end|> in the image and output "
                "the bounding box of each one.")
    return _generic_prompt(target, points, space, sent_size)


def _generic_prompt(target: str, points: bool, space: str, sent_size: Optional[tuple[int, int]]) -> str:
    if space == "abs" and sent_size:
        width, height = sent_size
        words = f"in pixels of the {width}x{height} image (0,0 is the top-left corner)"
    else:
        words = _SPACE_WORDS.get(space, _SPACE_WORDS["norm1000"])
    if points:
        shape = '[{"point_2d": [x, y], "label": "<what it is>"}]'
        what = "a point on each"
    else:
        shape = '[{"bbox_2d": [x1, y1, x2, y2], "label": "<what it is>"}]'
        what = "the bounding box of each"
    return (f"Locate {target} in the image and give {what} one. Answer with JSON only, in the form "
            f"{shape}, with coordinates {words}. If there is none, answer [].")
