"""JPEG photos prepared with Pillow alone: a DCT-scaled decode near the target, one exact resize, EXIF orientation.

A photo question needs no array library: libjpeg decodes at 1/2, 1/4 or 1/8 scale while it reads the
file (Pillow's `draft`), never below the size the model sees, and one antialiased resize then lands on
exactly the model's grid. OpenCV and numpy stay for the paths that need pixels as arrays.
"""

from __future__ import annotations

from io import BytesIO
from typing import TYPE_CHECKING

from ..errors import MediaError

if TYPE_CHECKING:
    from PIL import Image

# EXIF orientation value -> the Pillow transpose that turns stored pixels upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
            7: "TRANSVERSE", 8: "ROTATE_90"}
SWAPS_AXES = frozenset({5, 6, 7, 8})
PNG_COMPRESSION = 3  # as the array path writes PNGs: fast, still lossless
MIN_HAMMING_SHRINK = 1.2


def upright_at(data: bytes, orientation: int, height: int, width: int, label: str = "") -> "Image.Image":
    """The JPEG in `data` as an upright RGB image of exactly width x height (decoded at reduced scale)."""
    from PIL import Image

    # The stored (unrotated) pixels are resized first: rotating the small image is cheaper.
    stored_w, stored_h = (height, width) if orientation in SWAPS_AXES else (width, height)
    rgb = resize_to(decoded_near(data, stored_w, stored_h, label), stored_w, stored_h)
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(getattr(Image.Transpose, _UPRIGHT[orientation]))
    return rgb


def decoded_near(data: bytes, width: int, height: int, label: str = "") -> "Image.Image":
    """The stored pixels as RGB, decoded at the largest libjpeg reduction (none to 1/8) that keeps >= width x height."""
    from PIL import Image

    try:
        with Image.open(BytesIO(data), formats=("JPEG",)) as im:
            im.draft("RGB", (width, height))  # scale s <= stored // requested, so never below it
            im.load()
            return im if im.mode == "RGB" else im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError("cannot decode image", str(exc) or type(exc).__name__, where=label,
                         hint="the file may be corrupt or truncated") from None


def resize_to(im: "Image.Image", width: int, height: int) -> "Image.Image":
    """`im` at exactly width x height: Hamming to shrink by 1.2x or more, bicubic otherwise."""
    from PIL import Image

    if im.size == (width, height):
        return im
    # Pillow widens the kernel by the scale factor, so every source pixel counts (no aliasing). After a
    # DCT-scaled decode a shrink of 1.2-2x is usual: Hamming's short kernel costs two thirds of bicubic's
    # there and stays closer to a Lanczos reference than a bilinear or area resize; near 1:1 and when
    # enlarging, bicubic keeps edges sharper.
    shrink = max(im.width / width, im.height / height)
    resample = Image.Resampling.HAMMING if shrink >= MIN_HAMMING_SHRINK else Image.Resampling.BICUBIC
    return im.resize((width, height), resample)


def encode_image(im: "Image.Image", lossless: bool, quality: int, label: str = "") -> bytes:
    """JPEG (or PNG when lossless) bytes of a Pillow RGB image."""
    buffer = BytesIO()
    try:
        if lossless:
            im.save(buffer, "PNG", compress_level=PNG_COMPRESSION)
        else:
            im.save(buffer, "JPEG", quality=quality)
    except (OSError, ValueError) as exc:
        raise MediaError("cannot encode image", str(exc) or "the encoder failed", where=label) from None
    return buffer.getvalue()


def prepare_jpeg(data: bytes, orientation: int, height: int, width: int, *, lossless: bool, quality: int,
                 label: str = "") -> bytes:
    """The encoded bytes of a JPEG photo at exactly height x width, upright."""
    return encode_image(upright_at(data, orientation, height, width, label), lossless, quality, label)
