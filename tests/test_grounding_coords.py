"""Coordinate spaces: a box written in each family's own form and space comes back where it was."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mmcli.tasks.detect.coords import clean_box, clean_point, from_original, space_for
from mmcli.tasks.detect.parse import parse_answer
from mmcli.tasks.detect.prompts import default_space, grounding_prompt
from mmcli.tasks.detect.result import ground
from mmcli.media.resize import PixelBudget
from mmcli.families import FAMILIES


def _json(key: str, values) -> str:
    return json.dumps([{key: list(values), "label": "thing"}])


def _qwen2_tokens(values) -> str:
    (x1, y1, x2, y2) = values
    return (f"<|object_ref_start|>thing<|object_ref_end|><|box_start|>({x1:.6f},{y1:.6f}),"
            f"({x2:.6f},{y2:.6f})<|box_end|>")


def _gemini(values) -> str:
    x1, y1, x2, y2 = values
    return _json("box_2d", (y1, x1, y2, x2))


# family -> (the space its numbers are in, how the model writes a box)
WRITERS = {
    "qwen2.5-vl": ("abs", lambda v: _json("bbox_2d", v)),
    "qwen3-vl": ("norm1000", lambda v: _json("bbox_2d", v)),
    "qwen2-vl": ("norm1000", _qwen2_tokens),
    "generic": ("norm1000", lambda v: _json("bbox_2d", v)),
    "gemini": ("norm1000", _gemini),
    "norm1": ("norm1", lambda v: _json("bbox_2d", v)),
}


@st.composite
def scenes(draw):
    """An original size, the grid size it is sent at, and a box inside it (original pixels)."""
    width = draw(st.integers(60, 6000))
    height = draw(st.integers(max(30, width // 150), min(6000, width * 150)))
    family = FAMILIES[draw(st.sampled_from(["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "generic"]))]
    tokens = draw(st.integers(16, 4096))
    factor = family.factor
    budget = (PixelBudget(factor, 4 * factor * factor, tokens * factor * factor) if factor
              else PixelBudget(None, 1, family.max_pixels, family.longest_side))
    sent_h, sent_w = budget.target_size(height, width)
    x1 = draw(st.floats(0, width - 2))
    y1 = draw(st.floats(0, height - 2))
    x2 = draw(st.floats(x1 + 2, width))
    y2 = draw(st.floats(y1 + 2, height))
    return (width, height), (sent_w, sent_h), (x1, y1, x2, y2)


@settings(max_examples=300, deadline=None)
@given(scene=scenes(), writer=st.sampled_from(sorted(WRITERS)))
def test_a_box_written_in_any_familys_space_parses_back_within_a_pixel(scene, writer):
    original, sent, box = scene
    space_name, write = WRITERS[writer]
    encoded = from_original(box, space_for(space_name, *sent), *original)
    grounded = ground(parse_answer(write(encoded)), space_name, sent, original)
    [detection] = grounded.detections
    assert all(abs(a - b) <= 1.0 for a, b in zip(detection.coords, box)), (detection.coords, box)
    # Nothing swapped, clipped or dropped (a tiny box may still earn a hint about --coords).
    assert [w for w in grounded.warnings if "--coords" not in w] == []


@settings(max_examples=200, deadline=None)
@given(scene=scenes(), writer=st.sampled_from(["qwen2.5-vl", "qwen3-vl", "qwen2-vl"]))
def test_whole_number_answers_are_off_by_at_most_half_a_model_unit(scene, writer):
    # Models write whole numbers; the only error left is that rounding, scaled up, plus half a pixel.
    original, sent, box = scene
    space_name, write = WRITERS[writer]
    space = space_for(space_name, *sent)
    encoded = tuple(round(v) for v in from_original(box, space, *original))
    if encoded[2] <= encoded[0] or encoded[3] <= encoded[1]:
        return  # the box is smaller than one model unit: nothing to compare
    grounded = ground(parse_answer(write(encoded)), space_name, sent, original)
    [detection] = grounded.detections
    unit_x, unit_y = original[0] / space.width, original[1] / space.height
    for i, (got, want) in enumerate(zip(detection.coords, box)):
        unit = unit_x if i % 2 == 0 else unit_y
        assert abs(got - want) <= unit / 2 + 0.5 + 1e-6, (i, got, want, unit)


def test_qwen25_abs_maps_with_the_sent_to_original_ratio():
    # 4032x3024 sent at 1148x840 (the default Qwen2.5-VL budget): x scales by 4032/1148, y by 3024/840.
    grounded = ground(parse_answer('[{"bbox_2d": [287, 210, 861, 630]}]'), "abs", (1148, 840), (4032, 3024))
    assert grounded.detections[0].coords == (1008, 756, 3024, 2268)


def test_clean_box_swaps_clips_and_drops():
    assert clean_box((50, 60, 10, 20), 100, 100).coords == (10, 20, 50, 60)
    assert clean_box((50, 60, 10, 20), 100, 100).notes == ["inverted corners swapped"]
    clipped = clean_box((-10, -5, 120, 50), 100, 100)
    assert clipped.coords == (0, 0, 100, 50) and clipped.notes == ["clipped to the image"]
    assert clean_box((-0.3, 0, 100.4, 10), 100, 100).notes == []  # rounding noise is not worth a warning
    assert clean_box((10, 10, 10.2, 50), 100, 100).coords is None
    outside = clean_box((150, 10, 170, 50), 100, 100)
    assert outside.coords is None and outside.notes[-1] == "dropped: outside the image"


def test_clean_point_clips():
    assert clean_point((50.4, 20.6), 100, 100).coords == (50, 21)
    assert clean_point((150, -3), 100, 100).coords == (100, 0)


def test_prompts_follow_each_familys_training():
    assert grounding_prompt("qwen2.5-vl", "every dog", points=False, space="abs") == \
        "Locate every dog, output its bbox coordinates using JSON format."
    assert grounding_prompt("qwen3-vl", "the cups", points=True, space="norm1000") == \
        "Locate the cups, output its point coordinates using JSON format."
    assert "<|object_ref_start|>every dog<|object_ref_end|>" in grounding_prompt(
        "qwen2-vl", "every dog", points=False, space="norm1000")
    generic = grounding_prompt("generic", "every dog", points=False, space="norm1000")
    assert "0..1000" in generic and "bbox_2d" in generic
    assert "0 to 1" in grounding_prompt("generic", "dogs", points=False, space="norm1")
    assert "640x480" in grounding_prompt("generic", "dogs", points=False, space="abs", sent_size=(640, 480))
    assert "point_2d" in grounding_prompt("generic", "dogs", points=True, space="norm1000")


def test_coords_override_beats_the_family_convention():
    assert default_space("abs", None) == "abs"
    assert default_space("norm1000", None) == "norm1000"
    assert default_space("abs", "norm1") == "norm1"
