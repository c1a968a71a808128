"""Media fixture files for tests: realistic good inputs and deliberately bad ones.

Every `make_<name>(dirpath, ...)` writes one file (or FIFO, or directory) into `dirpath`,
creating the directory if needed, and returns its path. Photos come from scikit-image's
bundled sample data, so nothing is downloaded.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Callable, Union

import numpy as np
from PIL import Image, ImageChops

PathLike = Union[str, "os.PathLike[str]"]

PHOTOS = ("astronaut", "chelsea", "coffee")
PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo, landscape
ORIENTATION_TAG = 0x0112
BOMB_SIZE = (20000, 20000)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


def _target(dirpath: PathLike, name: str) -> Path:
    directory = Path(dirpath)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def _write(dirpath: PathLike, name: str, data: bytes) -> Path:
    path = _target(dirpath, name)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- photo sources


@functools.lru_cache(maxsize=8)
def _photo(which: str, size: tuple[int, int], grain: float) -> Image.Image:
    # Cached because upscaling to 12 MP costs a noticeable fraction of a second; callers
    # only read from the returned image.
    if which not in PHOTOS:
        raise ValueError(f"unknown photo {which!r}; choose one of {PHOTOS}")
    from skimage import data  # deferred: importing scikit-image is slow

    image = Image.fromarray(getattr(data, which)()).convert("RGB")
    image = _crop_to_aspect(image, size[0] / size[1]).resize(size, Image.Resampling.LANCZOS)
    if grain:
        # Sensor-like noise makes JPEG sizes resemble a real camera's, not a smooth upscale's.
        noise = Image.effect_noise(size, grain).convert("RGB")
        image = ImageChops.add(image, noise, scale=1.0, offset=-128)
    return image


def _crop_to_aspect(image: Image.Image, aspect: float) -> Image.Image:
    width, height = image.size
    if width / height > aspect:
        new_width = round(height * aspect)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = round(width / aspect)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


@functools.lru_cache(maxsize=16)
def _photo_jpeg(which: str, size: tuple[int, int], quality: int, grain: float,
                orientation: int | None) -> bytes:
    image = _photo(which, size, grain)
    exif = Image.Exif()
    exif[0x010F] = "mmcli-test"  # Make
    exif[0x0110] = "Phone 12MP"  # Model
    if orientation is not None:
        exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


# ---------------------------------------------------------------- good inputs


def make_real_photo(dirpath: PathLike, name: str = "photo.jpg", *, which: str = "astronaut",
                    size: tuple[int, int] = PHONE_SIZE, quality: int = 90,
                    grain: float = 0.0) -> Path:
    """Write a real photo (scikit-image sample) upscaled to `size` as a JPEG."""
    return _write(dirpath, name, _photo_jpeg(which, tuple(size), quality, grain, None))


def make_exif_rotated_portrait(dirpath: PathLike, name: str = "portrait.jpg", *,
                               which: str = "astronaut",
                               size: tuple[int, int] = PHONE_SIZE) -> Path:
    """Write a landscape-stored JPEG with EXIF Orientation=6 (displays as portrait)."""
    return _write(dirpath, name, _photo_jpeg(which, tuple(size), 90, 0.0, 6))


def make_rgba_png(dirpath: PathLike, name: str = "rgba.png",
                  size: tuple[int, int] = (400, 300)) -> Path:
    """Write an RGBA PNG: left half opaque red, right half fully transparent."""
    width, height = size
    # The transparent half hides green colour values, so dropping alpha (instead of
    # flattening on white) shows up as green rather than passing by accident.
    image = Image.new("RGBA", size, GREEN + (0,))
    image.paste(Image.new("RGBA", (width // 2, height), RED + (255,)), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return _write(dirpath, name, buffer.getvalue())


def make_palette_png_transparent(dirpath: PathLike, name: str = "palette.png",
                                 size: tuple[int, int] = (300, 100)) -> Path:
    """Write a mode-P PNG whose left third uses the transparent palette index 0."""
    width, height = size
    indices = np.ones((height, width), dtype=np.uint8)  # index 1: blue
    indices[:, : width // 3] = 0  # index 0: black, transparent
    indices[:, 2 * width // 3:] = 2  # index 2: yellow
    image = Image.frombytes("P", size, indices.tobytes())
    image.putpalette([0, 0, 0, *BLUE, 255, 255, 0])
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    return _write(dirpath, name, buffer.getvalue())


def make_png_16bit(dirpath: PathLike, name: str = "gray16.png",
                   size: tuple[int, int] = (512, 128)) -> Path:
    """Write a 16-bit greyscale PNG with a left-to-right 0..65535 gradient."""
    width, height = size
    row = np.linspace(0, 65535, width).round().astype("<u2")
    image = Image.frombytes("I;16", size, np.tile(row, (height, 1)).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return _write(dirpath, name, buffer.getvalue())


def make_cmyk_jpeg(dirpath: PathLike, name: str = "cmyk.jpg",
                   size: tuple[int, int] = (800, 600)) -> Path:
    """Write a real photo as a CMYK JPEG (as print workflows produce)."""
    buffer = io.BytesIO()
    _photo("coffee", tuple(size), 0.0).convert("CMYK").save(buffer, "JPEG", quality=90)
    return _write(dirpath, name, buffer.getvalue())


def make_animated_gif(dirpath: PathLike, name: str = "animated.gif",
                      size: tuple[int, int] = (64, 64)) -> Path:
    """Write a 3-frame animated GIF: red, green, blue."""
    frames = [Image.new("RGB", size, colour) for colour in (RED, GREEN, BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return _write(dirpath, name, buffer.getvalue())


def make_small_png(dirpath: PathLike, name: str = "small.png",
                   size: tuple[int, int] = (640, 480)) -> Path:
    """Write a real photo as a small RGB PNG (640x480 by default)."""
    buffer = io.BytesIO()
    _photo("chelsea", tuple(size), 0.0).save(buffer, "PNG")
    return _write(dirpath, name, buffer.getvalue())


def make_thin_image(dirpath: PathLike, name: str = "thin.png", height: int = 300) -> Path:
    """Write a 1 px wide PNG (aspect ratio beyond the 200:1 limit)."""
    column = np.linspace(0, 255, height).astype(np.uint8).reshape(height, 1)
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(column[:, :, None], 3, axis=2)).save(buffer, "PNG")
    return _write(dirpath, name, buffer.getvalue())


# ---------------------------------------------------------------- bad inputs


def make_zero_byte(dirpath: PathLike, name: str = "empty.jpg") -> Path:
    """Write an empty file named like a JPEG."""
    return _write(dirpath, name, b"")


def make_random_bytes_jpg(dirpath: PathLike, name: str = "noise.jpg", length: int = 4096) -> Path:
    """Write random bytes named like a JPEG."""
    # A leading zero byte rules out a chance match with any image signature.
    return _write(dirpath, name, b"\x00" + os.urandom(length - 1))


def make_truncated_jpeg(dirpath: PathLike, name: str = "truncated.jpg") -> Path:
    """Write a real JPEG cut to half its bytes (header intact, scan data missing)."""
    data = _photo_jpeg("coffee", (1024, 768), 90, 0.0, None)
    return _write(dirpath, name, data[: len(data) // 2])


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def make_png_bomb_header(dirpath: PathLike, name: str = "bomb.png",
                         size: tuple[int, int] = BOMB_SIZE) -> Path:
    """Write a tiny well-formed PNG whose IHDR claims `size` (20000x20000 RGB by default)."""
    width, height = size
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    # One compressed scanline only: enough for the structure, far too little to decode.
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 64))
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))
    return _write(dirpath, name, data)


def make_heic_named_png(dirpath: PathLike, name: str = "photo.png") -> Path:
    """Write an ISO-BMFF file with an `ftyp heic` box, misnamed .png."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"heic", 0) + b"mif1heic"
    meta = struct.pack(">I4sI", 12, b"meta", 0)  # empty full box: version 0, flags 0
    payload = bytes(range(256)) * 4
    mdat = struct.pack(">I4s", 8 + len(payload), b"mdat") + payload
    return _write(dirpath, name, ftyp + meta + mdat)


def make_fifo(dirpath: PathLike, name: str = "pipe.jpg") -> Path:
    """Create a named pipe with an image name (reading it would block forever)."""
    path = _target(dirpath, name)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def make_directory(dirpath: PathLike, name: str = "album.jpg") -> Path:
    """Create a directory with an image-like name."""
    # The image suffix checks that file-type decisions are not made from the name.
    path = _target(dirpath, name)
    path.mkdir(exist_ok=True)
    return path


GOOD: dict[str, Callable[[PathLike], Path]] = {
    "real_photo": make_real_photo,
    "exif_rotated_portrait": make_exif_rotated_portrait,
    "rgba_png": make_rgba_png,
    "palette_png_transparent": make_palette_png_transparent,
    "png_16bit": make_png_16bit,
    "cmyk_jpeg": make_cmyk_jpeg,
    "animated_gif": make_animated_gif,
    "small_png": make_small_png,
    "thin_image": make_thin_image,
}

BAD: dict[str, Callable[[PathLike], Path]] = {
    "zero_byte": make_zero_byte,
    "random_bytes_jpg": make_random_bytes_jpg,
    "truncated_jpeg": make_truncated_jpeg,
    "png_bomb_header": make_png_bomb_header,
    "heic_named_png": make_heic_named_png,
    "fifo": make_fifo,
    "directory": make_directory,
}


def make_all(dirpath: PathLike) -> dict[str, Path]:
    """Create every fixture in `dirpath`; keys are the names without `make_`."""
    return {name: make(dirpath) for name, make in {**GOOD, **BAD}.items()}
