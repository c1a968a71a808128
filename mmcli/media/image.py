"""Image decoding, normalisation, resizing to the model's grid and encoding."""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Optional

from ..errors import MediaError
from .jpeg import JPEG_QUALITY, jpeg_is_complete
from .resize import MAX_ASPECT_RATIO, AspectRatioError, PixelBudget
from .scaled_jpeg import SWAPS_AXES, prepare_jpeg

if TYPE_CHECKING:
    import numpy as np

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_ORIENTATION_TAG = 0x0112
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass
class ImageInput:
    """A decoded-enough image: validated, oriented size known, pixels ready or decodable fast."""

    label: str
    width: int
    height: int
    format: str
    warnings: list[str] = field(default_factory=list)
    jpeg_bytes: Optional[bytes] = None  # fast path: decoded later at reduced scale
    orientation: int = 1
    pixels: Optional["np.ndarray"] = None  # BGR, already oriented (slow path)


@dataclass
class PreparedImage:
    """An image encoded at exactly the size the model will see."""

    data: bytes
    mime: str
    width: int
    height: int


def _pil_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image, UnidentifiedImageError

    # Pillow signals broken files through all of these, depending on the plugin.
    return (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, ValueError, SyntaxError, EOFError, struct.error)


def open_image(data: bytes, label: str) -> ImageInput:
    """Validate and decode `data` far enough that no later step can fail on the input."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(BytesIO(data), formats=ALLOWED_FORMATS)
            if im.format == "JPEG" and im.mode in ("RGB", "L"):
                return _fast_jpeg_input(im, data, label)
            return _decoded_input(im, label)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaError("image too large", str(exc).split(".")[0], where=label,
                             hint="downscale it first; mmcli refuses decompression bombs") from None
        except _pil_errors() as exc:
            raise MediaError("cannot decode image", _pil_reason(exc), where=label,
                             hint="the file may be corrupt or truncated") from None


def _pil_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "cannot identify image file" in text:
        return "not a readable image"
    return text


def _fast_jpeg_input(im, data: bytes, label: str) -> ImageInput:
    if not jpeg_is_complete(data):
        raise MediaError("cannot decode image", "JPEG data is truncated", where=label,
                         hint="the file may be incomplete; download or copy it again")
    orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
    width, height = im.size
    if orientation in SWAPS_AXES:
        width, height = height, width
    return ImageInput(label, width, height, "jpeg", jpeg_bytes=data, orientation=orientation)


def _decoded_input(im, label: str) -> ImageInput:
    from PIL import ImageOps

    notes = []
    if getattr(im, "n_frames", 1) > 1:
        notes.append(f"{label}: animated image with {im.n_frames} frames; only the first is sent")
        im.seek(0)
    im.load()
    im = ImageOps.exif_transpose(im)
    pixels = to_bgr(im)
    height, width = pixels.shape[:2]
    return ImageInput(label, width, height, (im.format or "image").lower(), notes, pixels=pixels)


def to_bgr(im) -> "np.ndarray":
    """An 8-bit BGR array of a Pillow image in any mode: alpha on white, 16-bit scaled down."""
    import numpy as np

    if im.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(im, dtype=np.uint32)
        gray = (np.clip(wide, 0, 65535) // 257).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in _ALPHA_MODES:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        rgb = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(np.rint(rgb).astype(np.uint8)[:, :, ::-1])
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im)[:, :, ::-1])


def check_aspect(img: ImageInput) -> None:
    """Refuse images thinner than any model's grid allows (checked before anything is sent)."""
    if max(img.width, img.height) / min(img.width, img.height) > MAX_ASPECT_RATIO:
        raise MediaError("image too thin for the model's grid", str(AspectRatioError(img.height, img.width)),
                         where=img.label, hint="crop or pad the image to an aspect ratio of at most 200:1")


def target_size(img: ImageInput, budget: PixelBudget) -> tuple[int, int]:
    """(height, width) this image is sent at under `budget`; too-thin images are refused."""
    try:
        return budget.target_size(img.height, img.width)
    except AspectRatioError as exc:
        raise MediaError("image too thin for the model's grid", str(exc), where=img.label,
                         hint="crop or pad the image to an aspect ratio of at most 200:1") from None


def prepare_image(img: ImageInput, budget: PixelBudget, *, lossless: bool = False,
                  quality: int = JPEG_QUALITY) -> PreparedImage:
    """Resize `img` to exactly its target size and encode it (JPEG, or PNG when lossless)."""
    height, width = target_size(img, budget)
    if img.jpeg_bytes is not None:  # a photo: Pillow alone, decoded at reduced scale
        data = prepare_jpeg(img.jpeg_bytes, img.orientation, height, width, lossless=lossless, quality=quality,
                            label=img.label)
    else:
        data = encode_bgr(resize_exact(img.pixels, height, width), lossless, quality, img.label)
    return PreparedImage(data, "image/png" if lossless else "image/jpeg", width, height)


def oriented_bgr(img: ImageInput) -> "np.ndarray":
    """Full-resolution, upright BGR pixels of an opened image (what boxes are drawn on)."""
    if img.pixels is not None:
        return img.pixels
    import cv2
    import numpy as np

    bgr = cv2.imdecode(np.frombuffer(img.jpeg_bytes, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise MediaError("cannot decode image", "the JPEG decoder rejected the data", where=img.label)
    return apply_orientation(bgr, img.orientation)


def apply_orientation(bgr: "np.ndarray", orientation: int) -> "np.ndarray":
    """Turn stored pixels upright according to an EXIF orientation value (1-8)."""
    import cv2

    if orientation == 2:
        return cv2.flip(bgr, 1)
    if orientation == 3:
        return cv2.rotate(bgr, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(bgr, 0)
    if orientation == 5:
        return cv2.transpose(bgr)
    if orientation == 6:
        return cv2.rotate(bgr, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(bgr), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return bgr


def resize_exact(bgr: "np.ndarray", height: int, width: int) -> "np.ndarray":
    """`bgr` at exactly height x width, filtered for the scale factor."""
    import cv2

    src_h, src_w = bgr.shape[:2]
    if src_h == height and src_w == width:
        return bgr
    shrink = max(src_h / height, src_w / width)
    # Area averaging is needed only for large reductions; below 2x bilinear reads every source
    # pixel and is several times faster.
    if shrink >= 2:
        interpolation = cv2.INTER_AREA
    elif shrink > 1:
        interpolation = cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_CUBIC
    return cv2.resize(bgr, (width, height), interpolation=interpolation)


def encode_bgr(bgr: "np.ndarray", lossless: bool, quality: int, label: str = "") -> bytes:
    """JPEG (or PNG) bytes of a BGR array."""
    import cv2

    if lossless:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MediaError("cannot encode image", "the encoder failed", where=label)
    return buf.tobytes()
