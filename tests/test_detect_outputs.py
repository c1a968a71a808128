"""Files `mmcli detect` writes: annotated PNGs and crops, beside the input or in -o DIR, never clobbered;
PDF pages; bad inputs and bad output directories refused before anything is sent."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcli.tasks.detect.draw import colour
from tests.conftest import Run, assert_clean_error
from tests.conftest import TWO_BOXES
from tests.support import media, pdfs
from tests.support.scripted_server import Reply

BOXES_IN_ORIGINAL = [(200, 400, 600, 800), (1000, 200, 1400, 1000)]  # sent at half size


def detect(mmcli, server, *args, target="things"):
    """Run detect against the scripted server at the half-size budget."""
    return mmcli("detect", *args, target, "--base-url", server.base_url, "--max-pixels", "940800")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_boxes_drawn(path: Path, boxes, size):
    """A real PNG of `size` with each box's edges in its palette colour."""
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(path)
    assert image.format == "PNG" and image.size == size
    pixels = np.asarray(image.convert("RGB"))
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        mid_x, mid_y = (x1 + x2) // 2, (y1 + y2) // 2
        for y, x in ((mid_y, x1 + 1), (mid_y, x2 - 2), (y2 - 2, mid_x)):
            assert tuple(pixels[y, x]) == colour(index), (index, x, y, tuple(pixels[y, x]))
        assert tuple(pixels[mid_y, mid_x]) != colour(index)


def test_draw_writes_an_annotated_png_beside_the_input(mmcli, server, scene):
    before = _digest(scene)
    server.script(Reply(TWO_BOXES))
    run = detect(mmcli, server, scene, "--draw", "--json")
    assert run.code == 0, run.stderr
    annotated = scene.parent / "scene.boxes.png"
    assert_boxes_drawn(annotated, BOXES_IN_ORIGINAL, (2240, 1680))
    assert json.loads(run.stdout)["inputs"][0]["files"] == {"annotated": str(annotated)}
    assert f"wrote {annotated}" in run.stderr
    assert _digest(scene) == before
    assert sorted(p.name for p in scene.parent.iterdir()) == ["scene.boxes.png", "scene.png"]  # no temp files


def test_existing_output_is_never_clobbered_without_force(mmcli, server, scene):
    annotated = scene.parent / "scene.boxes.png"
    annotated.write_bytes(b"precious")
    run = detect(mmcli, server, scene, "--draw")
    assert_clean_error(run, 2, "output file exists", "scene.boxes.png")
    assert "--force" in run.stderr
    assert annotated.read_bytes() == b"precious"
    assert server.requests == []  # refused before anything was sent
    server.script(Reply(TWO_BOXES))
    assert detect(mmcli, server, scene, "--draw", "--force").code == 0
    assert_boxes_drawn(annotated, BOXES_IN_ORIGINAL, (2240, 1680))


def test_exif_rotated_photo_is_drawn_upright(mmcli, server, tmp_path):
    portrait = media.make_exif_rotated_portrait(tmp_path, size=(1200, 900))  # displayed as 900x1200
    server.script(Reply('[{"bbox_2d": [0.2, 0.1, 0.8, 0.5], "label": "face"}]'))
    run = mmcli("detect", portrait, "face", "--base-url", server.base_url, "--draw", "--coords", "norm1",
                "-o", tmp_path / "out", "--json")
    assert run.code == 0, run.stderr
    [detection] = json.loads(run.stdout)["inputs"][0]["detections"]
    assert detection["bbox"] == [180, 120, 720, 600]
    assert_boxes_drawn(tmp_path / "out" / "portrait.boxes.png", [(180, 120, 720, 600)], (900, 1200))


def test_output_dir_collects_images_crops_and_coco(mmcli, server, scene, tmp_path):
    out = tmp_path / "results" / "run1"
    server.script(Reply(TWO_BOXES + ' and a point {"point_2d": [50, 50], "label": "spot"}'))
    run = detect(mmcli, server, scene, "--draw", "--crop", "-o", out, "--format", "coco")
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["coco.json", "scene.boxes.png", "scene.crop-01-dog.png",
                                                     "scene.crop-02-cat.png"]
    assert_boxes_drawn(out / "scene.boxes.png", BOXES_IN_ORIGINAL, (2240, 1680))
    assert Image.open(out / "scene.crop-01-dog.png").size == (400, 400)
    assert Image.open(out / "scene.crop-02-cat.png").size == (400, 800)
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["annotations"]) == 3 and coco["images"][0]["annotated_file"] == str(out / "scene.boxes.png")
    assert run.stdout.splitlines()[0] == f"{scene}\tdog\t200\t400\t600\t800"  # stdout keeps the results
    assert not (scene.parent / "scene.boxes.png").exists()
    # Crops from that run are not overwritten by the next one without --force.
    again = detect(mmcli, server, scene, "--crop", "-o", out)
    assert_clean_error(again, 2, "crop files from an earlier run exist", "scene.crop-01-dog.png")
    assert len(server.chat_requests()) == 1


def test_output_dir_that_is_a_file(mmcli, server, scene, tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("keep me")
    run = detect(mmcli, server, scene, "--draw", "-o", blocker)
    assert_clean_error(run, 2, "output directory is a file", str(blocker))
    assert blocker.read_text() == "keep me"
    assert server.requests == []


def _without_file_permission_override(args: list[str]) -> list[str]:
    # Root ignores permission bits; without CAP_DAC_OVERRIDE it is held to them like anyone else.
    if os.geteuid() != 0:
        return args
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be simulated")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *args]


def test_read_only_output_dir(server, scene, tmp_path, clean_env):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    argv = [sys.executable, "-m", "mmcli", "detect", str(scene), "things", "--base-url", server.base_url,
            "--draw", "-o", str(locked)]
    try:
        proc = subprocess.run(_without_file_permission_override(argv), capture_output=True, text=True,
                              env=clean_env, timeout=60, cwd=Path(__file__).parent.parent)
    finally:
        locked.chmod(0o755)
    assert_clean_error(Run(proc.returncode, proc.stdout, proc.stderr), 2, "not writable", str(locked))
    assert list(locked.iterdir()) == []
    assert server.requests == []


def test_an_input_is_never_overwritten_even_with_force(mmcli, server, scene):
    other = scene.parent / "scene.boxes.png"
    shutil.copy(scene, other)
    before = _digest(other)
    run = detect(mmcli, server, scene, other, "--draw", "--force")
    assert_clean_error(run, 2, "refusing to overwrite an input", "scene.boxes.png")
    assert _digest(other) == before
    assert server.requests == []


def test_two_inputs_with_one_output_name_are_refused(mmcli, server, scene, tmp_path):
    twin = tmp_path / "other" / "scene.png"
    twin.parent.mkdir()
    shutil.copy(scene, twin)
    run = detect(mmcli, server, scene, twin, "--draw", "-o", tmp_path / "out")
    assert_clean_error(run, 2, "two inputs would write the same file")
    assert server.requests == []


def test_pdf_pages_with_boxes_get_one_image_each(mmcli, server, tmp_path):
    document = pdfs.text_pdf(tmp_path / "paper.pdf", 3)
    # Each page has a coloured block at x 10-60 %, y 40-60 % (from the top) of the page.
    block = '[{"bbox_2d": [100, 400, 600, 600], "label": "block"}]'
    server.script(Reply(block), Reply("Nothing like that on this page."), Reply(block))
    run = mmcli("detect", document, "the coloured block", "--base-url", server.base_url, "--family", "qwen3-vl",
                "--draw", "--pages", "1-3", "--json")
    assert run.code == 0, run.stderr
    entries = json.loads(run.stdout)["inputs"]
    assert [e["page"] for e in entries] == [1, 2, 3]
    first = entries[0]
    width, height = first["original_size"]
    assert first["page_size_pt"] == [612.0, 792.0]
    [detection] = first["detections"]
    assert detection["bbox_pt"] == pytest.approx([61.2, 316.8, 367.2, 475.2], abs=0.01)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["paper.p1.boxes.png", "paper.p3.boxes.png"]
    assert_boxes_drawn(tmp_path / "paper.p1.boxes.png", [tuple(detection["bbox"])], (width, height))
    [sent] = [r for r in server.chat_requests()[:1]]
    assert "the coloured block" in sent.json["messages"][-1]["content"][-1]["text"]


def test_pages_option_needs_a_pdf(mmcli, server, scene):
    run = detect(mmcli, server, scene, "--pages", "1-2")
    assert_clean_error(run, 2, "--pages needs a PDF")
    assert server.requests == []


BAD_INPUTS = [
    ("zero_byte", "empty"),
    ("random_bytes_jpg", "not"),
    ("truncated_jpeg", "truncated"),
    ("png_bomb_header", "too large"),
    ("directory", "directory"),
]


@pytest.mark.parametrize("name, why", BAD_INPUTS)
def test_bad_input_is_refused_before_any_request(mmcli, server, tmp_path, name, why):
    path = getattr(media, f"make_{name}")(tmp_path)
    run = mmcli("detect", path, "things", "--base-url", server.base_url, "--draw")
    assert_clean_error(run, 3, why, path.name)
    assert server.requests == []


def test_corrupt_pdf_is_refused_before_any_request(mmcli, server, tmp_path):
    broken = pdfs.corrupt_pdf(tmp_path / "broken.pdf")
    run = mmcli("detect", broken, "things", "--base-url", server.base_url)
    assert_clean_error(run, 3, "broken.pdf")
    assert server.requests == []
