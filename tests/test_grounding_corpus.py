"""A corpus of grounding answers in every documented form, each with its boxes in original pixels.

Every case is read as if the model saw a 1120x840 image sent for a 2240x1680 original (exactly half
size: what `--max-pixels 940800` makes of it), so abs coordinates double and 0..1000 coordinates
scale by 2.24 (x) and 1.68 (y). tests/test_detect_cli.py plays the same answers through the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mmcli.tasks.detect.parse import parse_answer
from mmcli.tasks.detect.result import ground

ORIGINAL = (2240, 1680)
SENT = (1120, 840)
MAX_PIXELS = 1120 * 840


@dataclass(frozen=True)
class Case:
    """One model answer and what mmcli must make of it."""

    name: str
    text: str
    expected: list  # (label, [x1, y1, x2, y2] or [x, y]) in original pixels
    space: str = "abs"
    skipped: int = 0
    truncated: bool = False
    warnings: tuple = ()  # fragments that must appear among the warnings
    form: str = "json"
    extra: dict = field(default_factory=dict)  # extra keys of the first detection


CORPUS = [
    Case("fenced list", '```json\n[\n  {"bbox_2d": [100, 200, 300, 400], "label": "dog"},\n'
         '  {"bbox_2d": [500, 100, 700, 500], "label": "cat"}\n]\n```',
         [("dog", [200, 400, 600, 800]), ("cat", [1000, 200, 1400, 1000])]),
    Case("prose around, no fence", 'Sure! Here is the dog: [{"bbox_2d": [10, 20, 110, 220], "label": "dog"}] '
         "Let me know if you need anything else.", [("dog", [20, 40, 220, 440])]),
    Case("single object", '{"bbox_2d": [0, 0, 560, 420], "label": "top-left quarter"}',
         [("top-left quarter", [0, 0, 1120, 840])]),
    Case("objects wrapper and bbox alias", '{"objects": [{"bbox": [50, 60, 150, 160], "label": "cup"}, '
         '{"bbox": [200, 60, 300, 160], "label": "cup"}]}',
         [("cup", [100, 120, 300, 320]), ("cup", [400, 120, 600, 320])]),
    Case("python literal quoting", "[{'bbox_2d': (100, 100, 200, 200), 'label': 'dog', 'occluded': False}]",
         [("dog", [200, 200, 400, 400])], extra={"occluded": False}),
    Case("json words and a trailing comma",
         '[{"bbox_2d": [100, 100, 200, 200], "label": "a", "visible": true, "note": null},]',
         [("a", [200, 200, 400, 400])], extra={"visible": True, "note": None}),
    Case("truncated mid-object", '```json\n[\n  {"bbox_2d": [100, 200, 300, 400], "label": "a"},\n'
         '  {"bbox_2d": [400, 200, 600, 400], "label": "b"},\n  {"bbox_2d": [700, 2',
         [("a", [200, 400, 600, 800]), ("b", [800, 400, 1200, 800])], truncated=True,
         warnings=("cut off; 2 complete item(s) recovered; 1 incomplete",)),
    Case("truncated between objects", '[{"bbox_2d": [10, 10, 60, 60], "label": "a"}, ',
         [("a", [20, 20, 120, 120])], truncated=True, warnings=("cut off; 1 complete",)),
    Case("text_content kept as an extra key", '[{"bbox_2d": [10, 10, 210, 60], "text_content": "TOTAL $4.20"}]',
         [("", [20, 20, 420, 120])], extra={"text_content": "TOTAL $4.20"}),
    Case("inverted corners", '[{"bbox_2d": [300, 400, 100, 200], "label": "dog"}]',
         [("dog", [200, 400, 600, 800])], warnings=("inverted corners swapped",)),
    Case("partly outside", '[{"bbox_2d": [-20, 800, 1200, 900], "label": "floor"}]',
         [("floor", [0, 1600, 2240, 1680])], warnings=("clipped to the image",)),
    Case("zero area dropped", '[{"bbox_2d": [100, 100, 100, 300], "label": "line"}, '
         '{"bbox_2d": [10, 10, 20, 20], "label": "ok"}]', [("ok", [20, 20, 40, 40])],
         warnings=("'line'): dropped: zero area",)),
    Case("wholly outside dropped", '[{"bbox_2d": [1200, 900, 1300, 1000], "label": "ghost"}]', [],
         warnings=("dropped: outside the image",)),
    Case("unreadable items skipped", '[{"bbox_2d": [100, 100, 200, 200], "label": "a"}, '
         '{"bbox_2d": [1, 2, 3], "label": "bad"}, {"label": "no box"}, "junk"]',
         [("a", [200, 200, 400, 400])], skipped=3, warnings=("3 item(s) could not be read",)),
    Case("several boxes under one key", '{"bbox_2d": [[10, 10, 20, 20], [30, 30, 40, 40]], "label": "dots"}',
         [("dots", [20, 20, 40, 40]), ("dots", [60, 60, 80, 80])]),
    Case("numbers as strings", '[{"bbox_2d": ["100", "100", "200", "200"], "label": "a"}]',
         [("a", [200, 200, 400, 400])]),
    Case("two fenced blocks", 'The dog:\n```json\n{"bbox_2d": [10, 10, 20, 20], "label": "dog"}\n```\n'
         'and the cat:\n```json\n{"bbox_2d": [30, 30, 40, 40], "label": "cat"}\n```',
         [("dog", [20, 20, 40, 40]), ("cat", [60, 60, 80, 80])]),
    Case("corner pairs", '[{"bbox_2d": [[100, 200], [300, 400]], "label": "dog"}]', [("dog", [200, 400, 600, 800])]),
    Case("points", '[{"point_2d": [560, 420], "label": "cup"}, {"point_2d": [100, 50], "label": "cup"}]',
         [("cup", [1120, 840]), ("cup", [200, 100])]),
    Case("no boxes, only prose", "I could not find any dog in this image.", [], form="none"),
    Case("an empty list", "```json\n[]\n```", []),
    # 0..1000 answers (Qwen2-VL, Qwen3-VL, generic endpoints)
    Case("qwen3 norm1000", '[{"bbox_2d": [250, 500, 750, 1000], "label": "dog"}]',
         [("dog", [560, 840, 1680, 1680])], space="norm1000"),
    Case("gemini box_2d is ymin, xmin, ymax, xmax", '[{"box_2d": [100, 250, 500, 750], "label": "cat"}]',
         [("cat", [560, 168, 1680, 840])], space="norm1000"),
    Case("qwen2 special tokens", "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(100,200),(500,600)"
         "<|box_end|>", [("dog", [224, 336, 1120, 1008])], space="norm1000", form="qwen2 tokens"),
    Case("qwen2 tokens, two boxes, one label", "<|object_ref_start|>dogs<|object_ref_end|><|box_start|>"
         "(0,0),(250,500)<|box_end|><|box_start|>(500,500),(1000,1000)<|box_end|>",
         [("dogs", [0, 0, 560, 840]), ("dogs", [1120, 840, 2240, 1680])], space="norm1000", form="qwen2 tokens"),
    Case("qwen2 tokens stripped by the server", "dog(100,200),(500,600)\ncat(0,0),(250,250)",
         [("dog", [224, 336, 1120, 1008]), ("cat", [0, 0, 560, 420])], space="norm1000",
         form="coordinate pairs"),
    Case("qwen2 tokens truncated", "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(100,200),(500,600)"
         "<|box_end|><|object_ref_start|>cat<|object_ref_end|><|box_start|>(1",
         [("dog", [224, 336, 1120, 1008])], space="norm1000", truncated=True, form="qwen2 tokens",
         warnings=("cut off; 1 complete",)),
    Case("paligemma loc tokens", "<loc0256><loc0512><loc0768><loc0896> cat ; <loc0000><loc0000><loc0512><loc0512> dog",
         [("cat", [1120, 420, 1960, 1260]), ("dog", [0, 0, 1120, 840])], space="norm1000", form="paligemma"),
    Case("norm1 fractions", '[{"bbox_2d": [0.25, 0.5, 0.75, 1.0], "label": "dog"}]',
         [("dog", [560, 840, 1680, 1680])], space="norm1"),
]


def read(case: Case):
    """Parse and map one case's answer."""
    parsed = parse_answer(case.text)
    return parsed, ground(parsed, case.space, SENT, ORIGINAL)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_answer_gives_the_expected_boxes_in_original_pixels(case):
    parsed, grounded = read(case)
    found = [(d.label, list(d.coords)) for d in grounded.detections]
    assert found == case.expected
    assert parsed.form == case.form
    assert parsed.skipped == case.skipped
    assert parsed.truncated == case.truncated
    for fragment in case.warnings:
        assert any(fragment in w for w in grounded.warnings), (fragment, grounded.warnings)
    if not case.warnings:
        assert grounded.warnings == []
    if case.extra:
        assert grounded.detections[0].extra == case.extra


def test_every_form_is_in_the_corpus():
    forms = {c.form for c in CORPUS}
    assert forms == {"json", "qwen2 tokens", "coordinate pairs", "paligemma", "none"}
    assert {c.space for c in CORPUS} == {"abs", "norm1000", "norm1"}


def test_nothing_in_an_answer_is_ever_evaluated(tmp_path):
    marker = tmp_path / "ran"
    hostile = (f'[{{"bbox_2d": [1, 2, 3, 4], "label": __import__("pathlib").Path("{marker}").touch()}}] '
               f'{{"bbox_2d": (lambda: open("{marker}", "w"))(), "label": "x"}}')
    parsed = parse_answer(hostile)
    assert not marker.exists()
    assert parsed.items == []
    assert parsed.skipped == 2


def test_deep_nesting_does_not_crash():
    parsed = parse_answer("[" * 100_000 + "]" * 100_000)
    assert parsed.items == []
    parsed = parse_answer('{"bbox_2d": [1, 2, 3, 4], "label": "a", "x": ' + "[" * 5000 + "]" * 5000 + "}")
    assert parsed.items == [] and parsed.form == "none"  # nothing read: --strict fails it


def test_brackets_in_prose_are_not_answers():
    parsed = parse_answer("I found [2] dogs [sic] in {this} picture.")
    assert parsed.form == "none" and parsed.items == [] and parsed.skipped == 0


def test_a_json_object_without_coordinates_counts_as_unreadable():
    parsed = parse_answer('{"answer": "there are no dogs"}')
    assert parsed.form == "json" and parsed.items == [] and parsed.skipped == 1


def test_space_doubts_are_reported():
    # Fractions read as pixels: almost certainly the wrong space.
    _, grounded = read(Case("fractions as abs", '[{"bbox_2d": [0.1, 0.2, 0.5, 0.6]}]', []))
    assert any("--coords norm1" in w for w in grounded.warnings)
    # 0..1000 numbers beyond the sent size, read as pixels.
    _, grounded = read(Case("norm read as abs", '[{"bbox_2d": [100, 100, 990, 990]}]', []))
    assert any("--coords norm1000" in w for w in grounded.warnings)
