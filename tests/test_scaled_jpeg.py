"""Photos prepared with Pillow alone: a DCT-scaled decode never below the model's grid, exactly the grid's
size sent, EXIF orientation kept, and the same picture as a full decode resized with Lanczos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from mmcli.media.image import open_image, prepare_image
from mmcli.media.resize import PixelBudget
from mmcli.media.scaled_jpeg import decoded_near
from tests.conftest import assert_clean_error
from tests.support import media

QWEN = dict(factor=28, min_pixels=4 * 784)
ORIENTATION_TAG = 0x0112
# Every transpose an EXIF orientation stands for, as Pillow's own exif_transpose applies them.
TRANSPOSES = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)


def mad(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> bytes:
    """A 12 MP phone photo (real content, sensor grain) as the camera saved it."""
    return media.make_real_photo(tmp_path_factory.mktemp("photo"), grain=8).read_bytes()


@pytest.mark.parametrize("max_tokens, reduced_by", [(16384, 1), (1280, 2), (300, 4), (64, 8), (4, 8)])
def test_the_decode_is_scaled_down_but_never_below_the_grid(photo, max_tokens, reduced_by):
    img = open_image(photo, "photo.jpg")
    budget = PixelBudget(max_pixels=max_tokens * 784, **QWEN)
    height, width = budget.target_size(img.height, img.width)
    decoded = decoded_near(photo, width, height)
    assert decoded.mode == "RGB"
    assert decoded.size == (-(-4032 // reduced_by), -(-3024 // reduced_by))
    assert decoded.width >= width and decoded.height >= height
    prepared = prepare_image(img, budget)
    assert (prepared.width, prepared.height) == (width, height)
    assert Image.open(io.BytesIO(prepared.data)).size == (width, height)


@pytest.mark.parametrize("budget", [PixelBudget(max_pixels=1280 * 784, **QWEN), PixelBudget(max_pixels=256 * 784, **QWEN),
                                    PixelBudget(factor=None, min_pixels=1, max_pixels=4096 * 4096, longest_side=2048)],
                         ids=["qwen-1280", "qwen-256", "generic-2048"])
def test_the_photo_sent_is_the_full_decode_resized_well(photo, budget):
    img = open_image(photo, "photo.jpg")
    prepared = prepare_image(img, budget)
    full = Image.open(io.BytesIO(photo)).convert("RGB")
    reference = full.resize((prepared.width, prepared.height), Image.Resampling.LANCZOS)
    assert mad(pixels(prepared.data), reference) < 3.0  # 0-255 scale: JPEG noise, not another picture
    assert mad(pixels(prepared.data), reference.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) > 15


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_sent_upright(photo, orientation):
    stored = Image.open(io.BytesIO(photo)).resize((800, 600), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    img = open_image(buffer.getvalue(), "turned.jpg")
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))).convert("RGB")
    assert (img.width, img.height) == upright.size
    prepared = prepare_image(img, PixelBudget(max_pixels=200 * 784, **QWEN))
    sent = pixels(prepared.data)
    assert sent.shape[:2] == (prepared.height, prepared.width)
    assert mad(sent, upright.resize((prepared.width, prepared.height), Image.Resampling.LANCZOS)) < 4.0
    for other, transpose in TRANSPOSES.items():
        turned = stored if transpose is None else stored.transpose(transpose)
        if other != orientation and turned.size == upright.size and mad(turned, upright) > 15:
            assert mad(sent, turned.resize((prepared.width, prepared.height), Image.Resampling.LANCZOS)) > 15


def test_a_gray_jpeg_is_sent_as_rgb_and_lossless_as_png(tmp_path):
    gray = Image.open(media.make_real_photo(tmp_path, size=(1600, 1200))).convert("L")
    buffer = io.BytesIO()
    gray.save(buffer, "JPEG", quality=90)
    img = open_image(buffer.getvalue(), "gray.jpg")
    assert img.jpeg_bytes is not None  # the Pillow path, not the array one
    budget = PixelBudget(max_pixels=256 * 784, **QWEN)
    for lossless, kind in ((False, "JPEG"), (True, "PNG")):
        prepared = prepare_image(img, budget, lossless=lossless)
        sent = Image.open(io.BytesIO(prepared.data))
        assert sent.format == kind and sent.mode == "RGB" and sent.size == (prepared.width, prepared.height)
        channels = np.asarray(sent, np.int16)
        assert np.abs(channels[..., 0] - channels[..., 2]).max() <= 2  # still gray
        assert mad(channels[..., 0], gray.resize(sent.size, Image.Resampling.LANCZOS)) < 3.0


def test_a_jpeg_broken_inside_its_scan_is_refused_with_a_clean_error_and_nothing_asked(mmcli, server, tmp_path):
    good = media.make_real_photo(tmp_path, size=(1600, 1200))
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 1024] = bytes(range(256)) * 4  # markers and garbage where entropy-coded data was
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(bytes(data))
    run = mmcli("ask", good, broken, "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, "cannot decode image", "broken.jpg")
    assert server.chat_requests() == []
