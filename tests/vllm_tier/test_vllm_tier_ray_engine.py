"""`--engine ray --backend vllm --device cpu` for real: Ray Data's vLLM stage starts vLLM's CPU build on the
trained tiny Qwen2-VL, in a local Ray, and its lines equal those of a local `--each` run against a vLLM server of
the same model (greedy decoding): the same ids, answers, boxes mapped back to the original pixels, usage; a
corrupt photo is a failed line; a rerun does nothing again.

Ray Data lives in a venv layered over the tier venv (tier_ray.py), which runs this mmcli."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import tier_server
import tier_ray
import tier_scenes
import tier_trained
from conftest import prepared_tier, serve_tiny_model
from PIL import Image
from test_vllm_tier_mmcli import run_mmcli
from tier_train import iou

pytestmark = pytest.mark.vllm
ROOT = Path(__file__).resolve().parent.parent.parent
FAMILY = "qwen2-vl"
SCENES = 3
SCALE = 4  # 896x896 originals, sent as the 224x224 the model was trained on
ASKED = ("the box", "--max-tokens-per-image", "64", "--temperature", "0")
ENGINE = ("--engine", "ray", "--backend", "vllm", "--device", "cpu", "--max-model-len", str(tier_server.MAX_MODEL_LEN),
          "--engine-arg", "dtype=float32", "--engine-arg", "enforce_eager=true", "--engine-arg", "max_num_seqs=4")
TIMED = ("seconds",)


@pytest.fixture(scope="module")
def model_folder() -> Path:
    try:
        return tier_trained.check_fresh(FAMILY)
    except tier_trained.StaleModel as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def same_name_server(request, tmp_path_factory, model_folder):
    """vLLM (fp32) serving the trained model under its folder's path: the name the engine run gives it, so
    both runs' job ids (which hold the model's name) are the same."""
    yield from serve_tiny_model(request, tmp_path_factory, FAMILY, served_name=str(model_folder),
                                model_dir=model_folder, dtype="float32")


def run_engine(python: Path, *args: str, state: Path) -> subprocess.CompletedProcess:
    """mmcli in the Ray venv, with a Ray of its own (no RAY_ADDRESS), offline and with a small KV cache."""
    env = tier_server.server_env(prepared_tier().venv, state)
    env = {k: v for k, v in env.items() if not k.startswith(("MMCLI_", "OPENAI_", "RAY_"))}
    env.update(COLUMNS="200", RAY_DISABLE_USAGE_STATS="1")
    return subprocess.run([str(python), "-m", "mmcli", *args], capture_output=True, timeout=900, env=env,
                          cwd=ROOT, check=False)


def scenes(folder: Path) -> dict[str, tuple]:
    """Held-out scenes, enlarged, and a corrupt photo; file name -> the box in original pixels."""
    folder.mkdir(parents=True)
    truth = {}
    for index in range(SCENES):
        drawn = tier_scenes.held_out(200 + index)
        Image.fromarray(tier_scenes.enlarged(drawn.pixels, SCALE)).save(folder / f"scene-{index}.png")
        truth[f"scene-{index}.png"] = drawn.scaled_box(SCALE)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG header and nothing whole
    return truth


def by_id(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {line["id"]: {k: v for k, v in line.items() if k not in TIMED} for line in lines}


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ, as paths with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in differences(a.get(key), b.get(key), f"{path}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for n, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{n}]")]
    return [] if a == b else [f"{path}: local {a!r:.200} engine {b!r:.200}"]


def test_engine_lines_equal_a_local_run(same_name_server, model_folder, tmp_path):
    python = tier_ray.prepare_ray(prepared_tier(), lambda message: None)
    truth = scenes(tmp_path / "scenes")
    model = ("--model", str(model_folder))
    local = run_mmcli("detect", "--each", str(tmp_path / "scenes"), *ASKED, *model, "--base-url",
                      same_name_server.base_url, "-o", str(tmp_path / "local"))
    assert local.returncode == 8, local.stderr.decode(errors="replace")
    engine = run_engine(python, "detect", "--each", str(tmp_path / "scenes"), *ASKED, *model, *ENGINE,
                        "-o", str(tmp_path / "engine"), state=tmp_path / "state")
    said = engine.stderr.decode(errors="replace")
    assert engine.returncode == 8, said
    assert "Traceback" not in said and "3 done, 1 failed" in said

    local_lines, engine_lines = by_id(tmp_path / "local" / "results.jsonl"), by_id(tmp_path / "engine" / "results.jsonl")
    assert set(engine_lines) == set(local_lines) and len(engine_lines) == SCENES + 1
    assert differences(local_lines, engine_lines) == []  # answers, boxes, usage, plan, the failed line's error
    found = [line for line in engine_lines.values() if not line.get("error")]
    right = [line for line in found for box in line["inputs"][0]["detections"]
             if iou(tuple(box["bbox"]), truth[Path(line["sources"][0]).name]) > 0.5]
    assert len(right) >= 2, [(line["sources"], line["inputs"][0]["detections"]) for line in found]  # original pixels
    [failed] = [line for line in engine_lines.values() if line.get("error")]
    assert failed["sources"][0].endswith("broken.png") and failed["error"]["exit_code"] == 3

    again = run_engine(python, "detect", "--each", str(tmp_path / "scenes"), *ASKED, *model, *ENGINE,
                       "-o", str(tmp_path / "engine"), state=tmp_path / "state")
    said = again.stderr.decode(errors="replace")
    assert again.returncode == 8 and "0 done, 0 failed, 3 already done, 1 failed before" in said, said
    assert by_id(tmp_path / "engine" / "results.jsonl") == engine_lines  # no line written twice
