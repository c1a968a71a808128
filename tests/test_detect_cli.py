"""`mmcli detect` against a local scripted endpoint: the corpus answers, prompts, output formats, --strict."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply, decode_images
from tests.test_grounding_corpus import CORPUS, MAX_PIXELS, ORIGINAL, SENT

TARGET = "things"


@pytest.fixture
def scene(tmp_path):
    """A 2240x1680 PNG: sent at exactly half size under --max-pixels 940800."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(90, 160, size=(ORIGINAL[1] // 8, ORIGINAL[0] // 8, 3), dtype=np.uint8)
    path = tmp_path / "scene.png"
    Image.fromarray(pixels).resize(ORIGINAL, Image.Resampling.NEAREST).save(path, compress_level=1)
    return path


def detect(mmcli, server, *args, target=TARGET):
    """Run detect against the scripted server."""
    return mmcli("detect", *args, target, "--base-url", server.base_url)


def _found(entry):
    return [(d["label"], d.get("bbox", d.get("point"))) for d in entry["detections"]]


@pytest.mark.parametrize("space", ["abs", "norm1000", "norm1"])
def test_corpus_answers_through_the_cli(mmcli, server, scene, space):
    cases = [c for c in CORPUS if c.space == space]
    server.script(*[Reply(c.text) for c in cases])
    coords = () if space == "abs" else ("--coords", space)
    run = detect(mmcli, server, *[scene] * len(cases), "--json", "--max-pixels", MAX_PIXELS, *coords)
    assert run.code == 0, run.stderr
    entries = json.loads(run.stdout)["inputs"]
    assert len(entries) == len(cases) == len(server.chat_requests())
    for case, entry in zip(cases, entries):
        assert entry["sent_size"] == list(SENT) and entry["original_size"] == list(ORIGINAL)
        assert entry["coordinate_space"] == space
        assert _found(entry) == [(label, coords) for label, coords in case.expected], case.name
        assert (entry["skipped"], entry["truncated"], entry["answer_format"]) == \
            (case.skipped, case.truncated, case.form), case.name
        assert entry["raw"] == case.text
        for fragment in case.warnings:
            assert any(fragment in w for w in entry["warnings"]), (case.name, fragment)
            assert fragment in run.stderr
        if case.extra:
            assert entry["detections"][0]["extra"] == case.extra


def test_the_request_carries_the_image_at_its_grid_size_and_the_trained_prompt(mmcli, server, scene):
    server.script(Reply('[{"bbox_2d": [1, 2, 3, 4], "label": "x"}]'))
    assert detect(mmcli, server, scene, "--max-pixels", MAX_PIXELS, target="every dog").code == 0
    content = server.chat_requests()[0].json["messages"][-1]["content"]
    assert content[-1]["text"] == "Locate every dog, output its bbox coordinates using JSON format."
    [sent] = decode_images(server.chat_requests()[0].json)
    assert sent.size == SENT


def test_each_family_gets_its_own_prompt(mmcli, server, scene):
    server.script(Reply("[]"), Reply("[]"), Reply("[]"), Reply("[]"))
    detect(mmcli, server, scene, "--family", "qwen2-vl", "--no-guided")
    detect(mmcli, server, scene, "-m", "Qwen/Qwen3-VL-8B-Instruct", "--points")
    detect(mmcli, server, scene, "--family", "generic", "--coords", "abs")
    detect(mmcli, server, scene, "-m", "gpt-4o-mini", "--points")
    prompts = [r.json["messages"][-1]["content"][-1]["text"] for r in server.chat_requests()]
    assert "<|object_ref_start|>things<|object_ref_end|>" in prompts[0]
    assert prompts[1] == "Locate things, output its point coordinates using JSON format."
    sent = decode_images(server.chat_requests()[2].json)[0].size
    assert f"{sent[0]}x{sent[1]} image" in prompts[2] and "bbox_2d" in prompts[2]
    assert "point_2d" in prompts[3] and "0..1000" in prompts[3]


def test_generic_family_maps_norm1000_from_the_original_size(mmcli, server, scene):
    server.script(Reply('```json\n[{"bbox_2d": [250, 500, 750, 1000], "label": "dog"}]\n```'))
    run = detect(mmcli, server, scene, "-m", "gpt-4o-mini", "--json")
    entry = json.loads(run.stdout)["inputs"][0]
    assert entry["coordinate_space"] == "norm1000"
    assert _found(entry) == [("dog", [560, 840, 1680, 1680])]


def test_piped_output_is_one_tab_separated_line_per_detection(mmcli, server, scene):
    server.script(Reply('[{"bbox_2d": [100, 200, 300, 400], "label": "dog"}, '
                        '{"bbox_2d": [10, 20, 30, 40], "label": "cat\\tnap\\u001b[31m"}]'))
    run = detect(mmcli, server, scene, "--max-pixels", MAX_PIXELS)
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines() == [f"{scene}\tdog\t200\t400\t600\t800",
                                       f"{scene}\tcat nap\t20\t40\t60\t80"]


def test_no_detections_exits_0_and_keeps_the_raw_answer(mmcli, server, scene):
    answer = "I could not find any unicorn in this image."
    server.script(Reply(answer))
    run = detect(mmcli, server, scene, "--json")
    assert run.code == 0
    assert "no detections" in run.stderr and "unicorn" in run.stderr
    entry = json.loads(run.stdout)["inputs"][0]
    assert entry["detections"] == [] and entry["raw"] == answer and entry["answer_format"] == "none"


def test_strict_exits_7_for_unreadable_answers_and_still_prints_them(mmcli, server, scene):
    answers = ["There are no boxes to give.",
               '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6',
               '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox": "left"}]']
    server.script(*map(Reply, answers))
    run = detect(mmcli, server, scene, scene, scene, "--strict", "--json")
    assert_clean_error(run, 7, "could not be parsed", "no boxes or points", f"{scene.name} and 2 more")
    entries = json.loads(run.stdout)["inputs"]
    assert [e["raw"] for e in entries] == answers
    assert [(e["answer_format"], e["truncated"], e["skipped"]) for e in entries] == \
        [("none", False, 0), ("json", True, 0), ("json", False, 1)]


def test_a_coordinate_too_large_for_a_float_skips_its_box_only(mmcli, server, scene):
    answer = '[{"bbox_2d": [' + "9" * 400 + ', 0, 10, 10], "label": "a"}, {"bbox_2d": [1, 2, 3, 4], "label": "b"}]'
    server.script(Reply(answer))
    run = detect(mmcli, server, scene, "--json")
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr
    entry = json.loads(run.stdout)["inputs"][0]
    assert [d["label"] for d in entry["detections"]] == ["b"] and entry["skipped"] == 1


def test_strict_passes_clean_answers_and_empty_lists(mmcli, server, scene):
    server.script(Reply('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}]'), Reply("[]"))
    assert detect(mmcli, server, scene, scene, "--strict").code == 0


def test_one_unreadable_answer_does_not_stop_the_others(mmcli, server, scene):
    server.script(Reply("no idea"), Reply('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}]'))
    run = detect(mmcli, server, scene, scene, "--strict", "--json")
    assert_clean_error(run, 7, "could not be parsed")
    entries = json.loads(run.stdout)["inputs"]
    assert len(entries) == 2 and _found(entries[1]) != []


def test_coco_on_stdout(mmcli, server, scene):
    server.script(Reply('[{"bbox_2d": [100, 200, 300, 400], "label": "dog"}, '
                        '{"bbox_2d": [10, 20, 30, 40], "label": "cat", "score": 0.9}, '
                        '{"bbox_2d": [50, 50, 60, 60], "label": "dog"}]'))
    run = detect(mmcli, server, scene, "--format", "coco", "--max-pixels", MAX_PIXELS)
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["images"] == [{"id": 1, "file_name": str(scene), "width": 2240, "height": 1680}]
    assert [c["name"] for c in data["categories"]] == ["dog", "cat"]
    first, second, third = data["annotations"]
    assert first["bbox"] == [200, 400, 400, 400] and first["area"] == 160000 and first["category_id"] == 1
    assert second["category_id"] == 2 and second["attributes"] == {"score": 0.9}
    assert third["category_id"] == 1 and third["image_id"] == 1


def test_points_in_coco_are_keypoints(mmcli, server, scene):
    server.script(Reply('[{"point_2d": [560, 420], "label": "cup"}]'))
    run = detect(mmcli, server, scene, "--points", "--format", "coco", "--max-pixels", MAX_PIXELS)
    [annotation] = json.loads(run.stdout)["annotations"]
    assert annotation["keypoints"] == [1120, 840, 2] and annotation["num_keypoints"] == 1


def test_dry_run_sends_nothing_and_shows_prompt_and_space(mmcli, server, scene):
    run = detect(mmcli, server, scene, "--dry-run", "--json", "--family", "qwen3-vl", "--draw")
    assert run.code == 0, run.stderr
    [plan] = json.loads(run.stdout)["plans"]
    item = plan["items"][0]
    assert item["details"]["coordinate_space"] == "norm1000"
    assert item["details"]["prompt"].startswith("Locate things")
    assert item["sent_width"] % 32 == 0 and item["details"]["annotated"].endswith("scene.boxes.png")
    assert server.requests == []
    assert not (scene.parent / "scene.boxes.png").exists()


def test_pass_url_is_refused(mmcli, server):
    run = detect(mmcli, server, "https://example.invalid/cat.jpg", "--pass-url")
    assert_clean_error(run, 2, "--pass-url")
    assert server.requests == []


def test_table_labels_are_plain_text():
    from mmcli.tasks.detect.parse import Parsed
    from mmcli.tasks.detect.report import InputResult, detections_table
    from mmcli.cli.output.render import Output
    from mmcli.tasks.detect.result import Detection, Grounded

    hostile = "[bold red]dog[/] \x1b[2J"
    grounded = Grounded([Detection("box", (1, 2, 3, 4), hostile, {"text_content": "A\x07B"})], "abs")
    result = InputResult("photo.jpg", None, (10, 10), (10, 10), grounded, Parsed(form="json"), "")
    stream = io.StringIO()
    Output(stdout=stream).console().print(detections_table([result]))
    text = stream.getvalue()
    assert "[bold red]dog[/]" in text and "\x1b" not in text and "\x07" not in text
    assert "text_content=A B" in text


def test_a_cut_stream_keeps_what_arrived_and_exits_5(mmcli, server, scene):
    from tests.support.scripted_server import CutStream

    text = '[{"bbox_2d": [100, 200, 300, 400], "label": "dog"}, {"bbox_2d": [500, 100, 700, 500], "label": "cat"}]'
    server.script(Reply("[]"), CutStream(text, after_chunks=9))  # cut inside the second object
    run = detect(mmcli, server, scene, scene, "--json", "--max-pixels", MAX_PIXELS)
    assert_clean_error(run, 5, "stream")
    data = json.loads(run.stdout)
    assert "stream" in data["error"]
    first, second = data["inputs"]
    assert first["detections"] == [] and "error" not in first
    assert _found(second) == [("dog", [200, 400, 600, 800])]
    assert second["truncated"] is True and "stream" in second["error"]
