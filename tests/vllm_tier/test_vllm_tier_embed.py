"""End to end: `mmcli embed` and `mmcli search` against the tier's tiny Qwen2-VL served as a pooling model.

The server is started with `--runner pooling --convert embed` (vLLM 0.32, CPU build): POST
/v1/embeddings takes chat `messages`, one conversation or a list, and returns 128 floats per
conversation (the tiny model's hidden size). The weights are random, so only what does not depend
on them is checked: counts and sizes of vectors, self-similarity, and token counts against the plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tier
import tier_server
from conftest import prepared_tier
from PIL import Image

pytest.importorskip("mmcli")
from tests.support import pdfs  # noqa: E402  (after the skip: the repo root is on sys.path)

HEALTH_TIMEOUT = 300.0
MODEL = "qwen2-vl-tiny-embed"
DIMS = 128


@pytest.fixture(scope="module")
def pooling_server(tmp_path_factory):
    """The tiny Qwen2-VL as an embedding model: vLLM with --runner pooling --convert embed."""
    paths = prepared_tier()
    log_path = tmp_path_factory.mktemp("vllm_tier_embed") / "server.log"
    state_dir = log_path.parent / "vllm-state"
    port = tier.free_port()
    argv = tier_server.server_argv(paths.python, paths.models["qwen2-vl"], port, MODEL)
    argv += ["--runner", "pooling", "--convert", "embed"]
    log_file = log_path.open("wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                            env=tier_server.server_env(paths.venv, state_dir), cwd=state_dir,
                            start_new_session=True, preexec_fn=tier_server._die_with_parent)
    handle = tier_server.ServerHandle(proc=proc, port=port, log_path=log_path, log_file=log_file, model=MODEL)
    try:
        tier.wait_healthy(handle.base_url, HEALTH_TIMEOUT, handle)
        yield handle
    finally:
        tier.stop_server(handle)


def run_mmcli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m mmcli ARGS`` with no endpoint variables and an empty config home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    with tempfile.TemporaryDirectory(prefix="mmcli-home-") as home:
        env.update(HOME=home, XDG_CONFIG_HOME=str(Path(home) / "config"), XDG_STATE_HOME=str(Path(home) / "state"),
                   MMCLI_AUTOSTART="0", COLUMNS="200")
        return subprocess.run([sys.executable, "-m", "mmcli", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three photos of different sizes (so different grids), with some texture."""
    folder = tmp_path_factory.mktemp("embed_photos")
    for name, size, seed in (("a.png", (280, 224), 1), ("b.png", (420, 280), 2), ("c.jpg", (224, 448), 3)):
        Image.effect_noise(size, 40 + seed * 10).convert("RGB").save(folder / name)
    return folder


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_images_and_pdf_pages_give_one_128_float_vector_each(pooling_server, photos, tmp_path):
    pdf = pdfs.text_pdf(tmp_path / "doc.pdf", 3)
    run = run_mmcli("embed", photos, pdf, "--pages", "1-2", "--batch-size", "2", "--max-pixels", str(200 * 28 * 28),
                    "--base-url", pooling_server.base_url)
    assert run.returncode == 0, run.stderr
    lines = _lines(run.stdout)
    assert [(Path(line["source"]).name, line["page"]) for line in lines] == [
        ("a.png", None), ("b.png", None), ("c.jpg", None), ("doc.pdf", 1), ("doc.pdf", 2)]
    assert all(line["dims"] == DIMS == len(line["embedding"]) for line in lines)
    assert [line["batch"]["size"] for line in lines] == [2, 2, 2, 2, 1]


def test_prompt_tokens_follow_the_planned_grid(pooling_server, photos):
    """Two images alone: the server's token counts differ by exactly the planned visual tokens' difference."""
    counts = {}
    for name in ("a.png", "b.png"):
        plan = json.loads(run_mmcli("embed", photos / name, "--dry-run", "--json", "--model", MODEL,
                                    "--base-url", pooling_server.base_url).stdout)
        planned = plan["requests"][0]["totals"]["visual_tokens"]
        run = run_mmcli("embed", photos / name, "--base-url", pooling_server.base_url)
        assert run.returncode == 0, run.stderr
        prompt = _lines(run.stdout)[0]["usage"]["prompt_tokens"]
        assert prompt >= planned + 2  # the grid plus the vision start/end markers
        counts[name] = (planned, prompt)
    (plan_a, used_a), (plan_b, used_b) = counts["a.png"], counts["b.png"]
    assert plan_a == (280 // 28) * (224 // 28) and plan_b == (420 // 28) * (280 // 28)
    assert used_b - used_a == plan_b - plan_a


def test_an_image_searched_with_itself_ranks_first_with_score_one(pooling_server, photos, tmp_path):
    index = tmp_path / "idx"
    built = run_mmcli("embed", photos, "--index", index, "--base-url", pooling_server.base_url)
    assert built.returncode == 0, built.stderr
    for name in ("a.png", "c.jpg"):
        run = run_mmcli("search", "--image", photos / name, "--index", index, "--json", "-k", "3",
                        "--base-url", pooling_server.base_url)
        assert run.returncode == 0, run.stderr
        best = json.loads(run.stdout)["matches"][0]
        assert Path(best["source"]).name == name
        assert best["score"] == pytest.approx(1.0, abs=1e-3)
    text = run_mmcli("search", "a red car", "--index", index, "--json", "--base-url", pooling_server.base_url)
    assert text.returncode == 0, text.stderr
    assert len(json.loads(text.stdout)["matches"]) == 3
