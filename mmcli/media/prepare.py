"""Images and URLs turned into prepared media items, within the family's pixel budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from .image import ImageInput, prepare_image
from .item import MediaItem
from .resize import PixelBudget

if TYPE_CHECKING:
    from ..settings import MediaOptions
    from ..families import Family
    from .sources import Source

# The most visual tokens one image may cost (what Qwen's processors allow); off-grid, the most pixels.
MAX_IMAGE_TOKENS = 16384
GENERIC_PIXEL_CEILING = 4096 * 4096


def pixel_ceiling(family: "Family") -> int:
    """The most pixels any one image or page may be sent at for this family."""
    if family.factor is None:
        return GENERIC_PIXEL_CEILING
    return MAX_IMAGE_TOKENS * family.factor * family.factor


def image_budget(family: "Family", media: "MediaOptions") -> PixelBudget:
    """The pixel budget images are sized to, from the family and the user's limits."""
    from ..families import user_max_pixels

    factor = family.factor
    if media.max_pixels and media.max_tokens_per_image:
        raise UsageError("--max-pixels and --max-tokens-per-image set the same budget", "give only one",
                         hint=f"--max-tokens-per-image N means --max-pixels N*{factor or 28}*{factor or 28}")
    max_pixels = user_max_pixels(family, media.max_pixels, media.max_tokens_per_image) or family.max_pixels
    check_ceiling(family, max_pixels, "--max-pixels" if media.max_pixels else "--max-tokens-per-image")
    if media.min_pixels:
        check_ceiling(family, media.min_pixels, "--min-pixels")
    # The family's minimum gives way to a smaller maximum the user asked for; an explicit minimum does not.
    min_pixels = media.min_pixels or min(family.min_pixels, max_pixels)
    if factor is not None and max_pixels < factor * factor:
        raise UsageError("pixel budget too small", f"{max_pixels} pixels is less than one {factor}x{factor} patch",
                         hint=f"the smallest budget is --max-pixels {factor * factor} (one visual token)")
    if min_pixels > max_pixels:
        raise UsageError("--min-pixels is above the maximum", f"{min_pixels} > {max_pixels}")
    longest = None if media.max_pixels else family.longest_side
    return PixelBudget(factor=factor, min_pixels=min_pixels, max_pixels=max_pixels, longest_side=longest)


def check_ceiling(family: "Family", pixels: int, flag: str) -> None:
    """Refuse a per-image budget above what the family can take at all."""
    ceiling = pixel_ceiling(family)
    if pixels > ceiling:
        what = (f"{MAX_IMAGE_TOKENS:,} visual tokens ({ceiling:,} pixels) per image" if family.factor
                else f"{ceiling:,} pixels per image")
        raise UsageError(f"{flag} is above the most a {family.name} model takes", f"{pixels:,} > {what}",
                         hint=f"use at most {flag} {ceiling if flag != '--max-tokens-per-image' else MAX_IMAGE_TOKENS}")


def image_item(source: "Source", image: Optional[ImageInput], budget: PixelBudget, *, lossless: bool,
               kind: str = "image") -> MediaItem:
    """One image resized to exactly its grid size and encoded; a URL with no image is passed through."""
    if image is None:
        return MediaItem(source=source.label, kind=kind, mime=source.sniffed.mime, transport="url",
                         url=source.url or "", notes=["URL sent unchanged"])
    prepared = prepare_image(image, budget, lossless=lossless)
    return MediaItem(source=source.label, kind=kind, mime=prepared.mime, data=prepared.data,
                     original_width=image.width, original_height=image.height,
                     sent_width=prepared.width, sent_height=prepared.height,
                     visual_tokens=budget.tokens(prepared.height, prepared.width), notes=list(image.warnings))
