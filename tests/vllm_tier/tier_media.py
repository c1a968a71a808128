"""Media fixtures for the vLLM tier tests: real sample photos scaled to phone sizes."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from PIL import Image

FACTOR = 28
EXIF_ORIENTATION = 0x0112


def sample_photo(name: str = "astronaut") -> Image.Image:
    """A real photo from scikit-image's bundled data, or a synthetic one without it."""
    try:
        import skimage.data
    except ImportError:
        gradient = Image.linear_gradient("L").resize((512, 384))
        noise = Image.effect_noise((512, 384), 40)
        return Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def photo(width: int, height: int, name: str = "astronaut") -> Image.Image:
    """A sample photo resized (stretched if need be) to width x height."""
    return sample_photo(name).resize((width, height), Image.Resampling.BICUBIC)


def save_jpeg(image: Image.Image, path: Path, orientation: int | None = None) -> Path:
    """Write a JPEG, optionally tagged with an EXIF orientation."""
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    image.save(path, "JPEG", quality=88, exif=exif.tobytes())
    return path


def rotated_phone_photo(path: Path, upright_width: int = 3024, upright_height: int = 4032) -> Path:
    """A portrait photo stored landscape with EXIF orientation 6, as phones write them."""
    upright = photo(upright_width, upright_height, "astronaut")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    return save_jpeg(stored, path, orientation=6)


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    """Encode an image to bytes."""
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """A base64 data URL of an image."""
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(encode(image, fmt)).decode()}"


def video_frames_url(frames: list[Image.Image]) -> str:
    """vLLM's frame-list video URL: ``data:video/jpeg;base64,<f1>,<f2>,...``."""
    parts = [base64.b64encode(encode(frame, "JPEG")).decode() for frame in frames]
    return "data:video/jpeg;base64," + ",".join(parts)


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = 4 * FACTOR**2,
                 max_pixels: int = 16384 * FACTOR**2) -> tuple[int, int]:
    """Reference Qwen2-VL resize: sides multiples of factor, area within the pixel bounds."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def image_tokens(width: int, height: int) -> int:
    """Visual tokens the tiny model's server spends on an image of this size."""
    h_bar, w_bar = smart_resize(height, width)
    return (h_bar // FACTOR) * (w_bar // FACTOR)
