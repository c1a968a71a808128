"""Guided detect on the trained tiny Qwen2-VL: held to its own box form by vLLM's grammar backend, it gives
the same answers, token for token, as the free-text detect on the same scenes, and those boxes are right.

The server is the trained model's (``conftest.trained_server``, which test_vllm_tier_trained shares), started
like every tier server with the structured-outputs config of ``tier_server`` (xgrammar, ``disable_any_whitespace``).
No box is written here: the truth comes from the scenes, and the free-text run is the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import tier_trained
from test_vllm_tier_mmcli import run_mmcli
from test_vllm_tier_trained import BUDGET, SCALE, endpoint, write_scenes
from tier_train import iou


def detect_json(server, paths: list[Path], *flags: str) -> dict:
    """``mmcli detect PATHS --json`` against the trained server; the parsed output."""
    run = run_mmcli("detect", *(str(p) for p in paths), tier_trained.TARGET, *BUDGET, "--json", *flags,
                    *endpoint(server))
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return json.loads(run.stdout)


def by_source(found: dict) -> dict[str, dict]:
    """Each input's entry, by its file name."""
    return {Path(entry["source"]).name: entry for entry in found["inputs"]}


def test_the_guided_request_carries_the_box_grammar(trained_server, tmp_path):
    """A dry run shows what --guided sends: the family's own prompt, and its box form as a regex."""
    [(path, _)] = write_scenes(tmp_path / "one", 300, SCALE)[:1]
    run = run_mmcli("detect", str(path), tier_trained.TARGET, *BUDGET, "--guided", "--dry-run", "--json",
                    *endpoint(trained_server))
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    request = json.loads(run.stdout)["plans"][0]["request"]
    assert r"<\|box_start\|>" in request["structured_outputs"]["regex"] and "response_format" not in request
    assert "<|object_ref_start|>the box<|object_ref_end|>" in json.dumps(request["messages"])


def test_guided_detect_gives_the_free_text_boxes(trained_server, tmp_path):
    """20 held-out scenes, 896x896 (sent as 224x224): the guided answers equal the free-text ones, raw text
    and mapped boxes alike, parse with no warning, and at least 18 boxes overlap the truth (IoU > 0.5)."""
    scenes = write_scenes(tmp_path / "scenes", 100, SCALE)
    paths = [path for path, _ in scenes]
    free = by_source(detect_json(trained_server, paths, "--no-guided"))
    guided = by_source(detect_json(trained_server, paths, "--guided"))
    assert set(guided) == set(free) == {path.name for path in paths}
    for name, entry in guided.items():
        assert entry["raw"] == free[name]["raw"], name
        assert entry["detections"] == free[name]["detections"], name
        assert entry["warnings"] == [] and not entry["skipped"] and not entry["truncated"], entry
    truth = {path.name: drawn.scaled_box(SCALE) for path, drawn in scenes}
    good = [name for name, entry in guided.items()
            if len(entry["detections"]) == 1 and iou(tuple(entry["detections"][0]["bbox"]), truth[name]) > 0.5]
    assert len(good) >= 18, {name: ([d["bbox"] for d in guided[name]["detections"]], truth[name])
                             for name in truth}
