"""Pure resize math: the sizes a model's processor will use, computed before any pixel is touched."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

MAX_ASPECT_RATIO = 200


class AspectRatioError(ValueError):
    """The image is too thin for the patch grid."""

    def __init__(self, height: int, width: int) -> None:
        ratio = max(height, width) / max(1, min(height, width))
        super().__init__(
            f"aspect ratio {ratio:.0f}:1 is over the limit of {MAX_ASPECT_RATIO}:1 ({width}x{height} px)"
        )
        self.ratio = ratio


def round_by_factor(number: float, factor: int) -> int:
    """The multiple of `factor` nearest to `number` (Python's round, as qwen-vl-utils does)."""
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    """The smallest multiple of `factor` not below `number`."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    """The largest multiple of `factor` not above `number`."""
    return math.floor(number / factor) * factor


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 4 * 28 * 28, max_pixels: int = 16384 * 28 * 28
) -> tuple[int, int]:
    """(height, width) on the `factor` grid with the pixel count in [min_pixels, max_pixels]."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise AspectRatioError(height, width)
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def within_aspect_limit(height: int, width: int, factor: int) -> tuple[int, int]:
    """A grid size whose sides are at most 200:1 apart. Rounding can push an image just under the limit past
    it (5615x29 becomes 5628x28), and the server's processor refuses such an image as sent: the long side
    loses one grid step."""
    short, long = min(height, width), max(height, width)
    if long <= short * MAX_ASPECT_RATIO:
        return height, width
    long = floor_by_factor(short * MAX_ASPECT_RATIO, factor)
    return (long, short) if height > width else (short, long)


def fit_longest_side(height: int, width: int, longest: int) -> tuple[int, int]:
    """(height, width) scaled down, aspect kept, so the longest side is at most `longest`."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = longest / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class PixelBudget:
    """How an image is sized for one request: a grid and pixel bounds, or a longest side."""

    factor: Optional[int]
    min_pixels: int
    max_pixels: int
    longest_side: Optional[int] = None

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) an image of this size is sent at."""
        if self.factor is not None:
            return within_aspect_limit(*smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels),
                                       self.factor)
        h, w = height, width
        if self.longest_side:
            h, w = fit_longest_side(h, w, self.longest_side)
        if h * w > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (h * w))
            h, w = max(1, math.floor(h * scale)), max(1, math.floor(w * scale))
        return h, w

    def tokens(self, height: int, width: int) -> Optional[int]:
        """Visual tokens for a grid-aligned image of this size, None off-grid."""
        if self.factor is None:
            return None
        return (height // self.factor) * (width // self.factor)
