"""Drawing: boxes in distinct palette colours at exactly their pixels, labels made safe, crops."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mmcli.tasks.detect.draw import PALETTE, annotate, colour, crop, line_width, png_bytes
from mmcli.tasks.detect.labels import clean_label, slug
from mmcli.tasks.detect.result import Detection


def _grey(size=(400, 300)):
    return Image.new("RGB", size, (128, 128, 128))


def test_boxes_are_outlined_in_distinct_colours():
    boxes = [Detection("box", (20, 40, 200, 260), "dog"), Detection("box", (220, 60, 380, 280), "cat")]
    drawn = np.asarray(annotate(_grey(), boxes))
    assert colour(0) != colour(1)
    for index, (x1, y1, x2, y2) in enumerate(d.coords for d in boxes):
        fill = colour(index)
        mid_y = (y1 + y2) // 2
        assert tuple(drawn[mid_y, x1]) == fill  # left edge
        assert tuple(drawn[mid_y, x2 - 1]) == fill  # right edge
        assert tuple(drawn[y2 - 1, (x1 + x2) // 2]) == fill  # bottom edge
        assert tuple(drawn[mid_y, (x1 + x2) // 2]) == (128, 128, 128)  # inside stays untouched


def test_line_width_grows_with_the_image():
    assert line_width(400, 300) == 2
    assert line_width(4032, 3024) == 10


def test_hostile_labels_are_cleaned_and_capped():
    label = "dog\x1b[2J\x07\n\tand\u202e more" + "x" * 500
    cleaned = clean_label(label, 40)
    assert len(cleaned) == 40 and cleaned.endswith("…")
    assert not any(ord(c) < 32 or c in "\u202e\x7f" for c in cleaned)
    drawn = annotate(_grey(), [Detection("box", (10, 50, 100, 100), label)])
    assert drawn.size == (400, 300)
    assert slug("Crème brûlée / 2 \x00") == "creme-brulee-2"
    assert slug("狗") == ""


def test_points_are_marked_and_labels_fit_at_the_edges():
    detections = [Detection("point", (5, 5), "corner"), Detection("point", (399, 299), "far corner")]
    drawn = np.asarray(annotate(_grey(), detections))
    assert tuple(drawn[299, 399]) == colour(1)
    assert set(PALETTE[:2]) <= {tuple(p) for p in drawn.reshape(-1, 3)}


def test_crop_and_png():
    image = _grey()
    image.paste((255, 0, 0), (20, 40, 200, 260))
    piece = crop(image, Detection("box", (20, 40, 200, 260), "red"))
    assert piece.size == (180, 220)
    assert np.asarray(piece).reshape(-1, 3).tolist().count([255, 0, 0]) == 180 * 220
    data = png_bytes(piece)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
