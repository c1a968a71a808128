"""Pure resize math against qwen-vl-utils' published values, and the JPEG helpers."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmcli.media.jpeg import jpeg_is_complete
from mmcli.media.resize import AspectRatioError, PixelBudget, fit_longest_side, smart_resize

QWEN_MAX = 16384 * 28 * 28


@pytest.mark.parametrize(
    "height, width, max_pixels, expected",
    [
        (1080, 1920, QWEN_MAX, (1092, 1932)),
        (3024, 4032, 2048 * 28 * 28, (1092, 1456)),
        (480, 640, QWEN_MAX, (476, 644)),
        (2268, 4032, 1280 * 28 * 28, (728, 1316)),  # the design note's phone photo
        (10, 10, QWEN_MAX, (56, 56)),  # scaled up to min_pixels = 4 patches
    ],
)
def test_smart_resize_matches_reference_values(height, width, max_pixels, expected):
    assert smart_resize(height, width, 28, 4 * 28 * 28, max_pixels) == expected


def test_aspect_ratio_over_200_is_refused():
    with pytest.raises(AspectRatioError):
        smart_resize(300, 1)
    assert smart_resize(200 * 28, 28) == (5600, 28)  # exactly 200:1 is allowed


@given(st.integers(1, 8000), st.integers(1, 8000), st.sampled_from([28, 32]), st.integers(64, 16384))
def test_client_size_is_a_fixed_point_of_the_server_resize(height, width, factor, max_tokens):
    if max(height, width) / min(height, width) > 200:
        return
    max_pixels = max_tokens * factor * factor
    h, w = PixelBudget(factor, 4 * factor * factor, max_pixels).target_size(height, width)
    assert h % factor == 0 and w % factor == 0
    assert h * w <= max_pixels or min(h, w) == factor
    # What the server does with what we send (its defaults): nothing.
    assert smart_resize(h, w, factor, 4 * factor * factor, 16384 * factor * factor) == (h, w)


def test_a_thin_image_rounded_past_200_to_1_is_sent_at_exactly_200_to_1():
    # 5615x29 is 194:1, but on the 28 grid it rounds to 5628x28 (201:1), which the server would refuse.
    assert smart_resize(29, 5615) == (28, 5628)
    budget = PixelBudget(factor=28, min_pixels=4 * 784, max_pixels=16384 * 784)
    assert budget.target_size(29, 5615) == (28, 5600)
    assert budget.target_size(5615, 29) == (5600, 28)
    assert smart_resize(28, 5600) == (28, 5600)


def test_budget_tokens_and_generic_longest_side():
    qwen = PixelBudget(factor=28, min_pixels=4 * 784, max_pixels=1280 * 784)
    assert qwen.tokens(728, 1316) == 26 * 47
    generic = PixelBudget(factor=None, min_pixels=1, max_pixels=2048 * 2048, longest_side=2048)
    assert generic.target_size(3024, 4032) == (1536, 2048)
    assert generic.tokens(1536, 2048) is None
    assert fit_longest_side(100, 50, 2048) == (100, 50)


def test_generic_max_pixels_caps_area():
    budget = PixelBudget(factor=None, min_pixels=1, max_pixels=1_000_000)
    h, w = budget.target_size(3000, 4000)
    assert h * w <= 1_000_000 and math.isclose(w / h, 4 / 3, rel_tol=0.01)


def test_jpeg_completeness_check(tmp_path):
    from PIL import Image

    path = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48), "red").save(path, quality=90)
    data = path.read_bytes()
    assert jpeg_is_complete(data)
    assert not jpeg_is_complete(data[: len(data) // 2])
    assert jpeg_is_complete(data + b"trailing bytes after EOI")
    assert not jpeg_is_complete(b"not a jpeg")

