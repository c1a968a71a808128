"""detect --each: one COCO dataset for the whole run (old and new lines); serve --data-parallel-size."""

from __future__ import annotations

import json

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply, Status, vllm_error
from tests.test_batch_each import lines, make_images
from tests.test_serve_command import command, flag

BOX = Reply('[{"bbox_2d": [10, 10, 50, 40], "label": "dog"}, {"bbox_2d": [60, 5, 70, 30], "label": "cat"}]')


def test_detect_each_writes_one_coco_dataset_for_the_run(mmcli, server, tmp_path):
    album = tmp_path / "album"
    make_images(album, 3)
    out = tmp_path / "out"
    server.default = BOX
    server.script(BOX, Status(400, vllm_error(400, "nope")))
    run = mmcli("detect", "--each", album, "animals", "--format", "coco", "-o", out, "-j", "1",
                "--base-url", server.base_url)
    assert_clean_error(run, 8, "1 of 3 job(s) failed")
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 4
    assert {c["name"] for c in coco["categories"]} == {"dog", "cat"}

    run = mmcli("detect", "--each", album, "animals", "--format", "coco", "-o", out, "--retry-failed",
                "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 6  # the earlier lines count too
    names = sorted(image["file_name"] for image in coco["images"])
    assert names == sorted(str(p) for p in sorted(album.iterdir()))
    first = next(image for image in coco["images"] if image["file_name"].endswith("img000.png"))
    assert (first["width"], first["height"]) == (80, 60)
    assert len(lines(out / "results.jsonl")) == 4  # three jobs and one retry


def test_detect_each_refusals(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 1)
    run = mmcli("detect", "--each", tmp_path / "album", "x", "--format", "coco", "--base-url", server.base_url)
    assert_clean_error(run, 2, "--format needs -o DIR")
    run = mmcli("detect", "--each", tmp_path / "album", "x", "--draw", "--base-url", server.base_url)
    assert_clean_error(run, 2, "does not draw")
    assert server.requests == []


def test_serve_data_parallel_size():
    argv = command(data_parallel_size=2).argv
    assert flag(argv, "--data-parallel-size") == "2"
    assert "--data-parallel-size" not in command(data_parallel_size=1).argv


def test_serve_data_parallel_size_on_the_command_line(mmcli, tmp_path):
    run = mmcli("serve", "qwen2.5-vl", "--data-parallel-size", "4", "--dry-run", env={"PATH": str(tmp_path)})
    assert run.code == 0, run.stderr
    assert "--data-parallel-size 4" in run.stdout


def test_detect_each_dataset_holds_this_runs_target_and_inputs_only(mmcli, server, tmp_path):
    album = tmp_path / "album"
    make_images(album, 3)
    out = tmp_path / "out"
    server.default = BOX
    assert mmcli("detect", "--each", album, "animals", "--format", "coco", "-o", out,
                 "--base-url", server.base_url).code == 0
    server.default = Reply('[{"bbox_2d": [1, 1, 20, 20], "label": "car"}]')
    other = tmp_path / "other"
    make_images(other, 1, start=7)
    run = mmcli("detect", "--each", other, "vehicles", "--format", "coco", "-o", out, "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    coco = json.loads((out / "coco.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == [str(other / "img007.png")]
    assert {c["name"] for c in coco["categories"]} == {"car"} and len(coco["annotations"]) == 1
    assert len(lines(out / "results.jsonl")) == 4  # the results file keeps every run's lines
