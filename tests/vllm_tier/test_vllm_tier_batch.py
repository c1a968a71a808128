"""Many jobs against the real vLLM of the tier: --each with the token check on every line, and an
exported batch file run by vLLM's own offline runner, collected into the same lines as a live run."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import tier
import tier_media
import tier_server
from test_vllm_tier_mmcli import ask_json, run_mmcli, text

PROMPT = "Describe this."


def make_photos(folder: Path, count: int) -> list[Path]:
    """`count` different photos of phone-like shapes (so every job has its own id and size)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        image = tier_media.photo(640 + 28 * n, 480 + 14 * (n % 5), name=("astronaut", "coffee", "chelsea")[n % 3])
        paths.append(tier_media.save_jpeg(image, folder / f"p{n:02d}.jpg"))
    return paths


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_over_12_photos_checks_tokens_on_every_line(vllm_server, tmp_path):
    make_photos(tmp_path / "album", 12)
    out = tmp_path / "results.jsonl"
    proc = run_mmcli("ask", "--each", str(tmp_path / "album"), PROMPT, "--concurrency", "4", "-o", str(out),
                     "--base-url", vllm_server.base_url, "--model", vllm_server.model,
                     "--max-tokens", "2", "--temperature", "0")
    assert proc.returncode == 0, text(proc)
    text_only = ask_json(vllm_server)["usage"]["prompt_tokens"]
    found = results(out)
    assert len(found) == 12
    for line in found:
        assert line["verified"] is True, line
        planned = line["plan"]["totals"]["visual_tokens"]
        assert line["usage"]["prompt_tokens"] - text_only == planned + 2, line  # + vision start/end


def test_exported_file_runs_on_vllm_run_batch_and_collects_like_a_live_run(vllm_server, tmp_path):
    make_photos(tmp_path / "album", 3)
    export = tmp_path / "requests.jsonl"
    name = vllm_server.model
    proc = run_mmcli("ask", "--each", str(tmp_path / "album"), PROMPT, "--export", "openai-batch", str(export),
                     "--model", name, "--family", "qwen2-vl", "--max-tokens", "2", "--temperature", "0")
    assert proc.returncode == 0, text(proc)

    paths = tier.prepare()
    output = tmp_path / "output.jsonl"
    argv = [str(paths.python), "-m", "vllm.entrypoints.launchers.run_batch", "-i", str(export), "-o", str(output),
            "--model", str(paths.model_dir), "--served-model-name", name, "--max-model-len", "16384",
            "--enforce-eager", "--limit-mm-per-prompt", json.dumps({"image": 4, "video": 1})]
    with tempfile.TemporaryDirectory(prefix="rb-") as state:  # short: vLLM's IPC socket path has a 107-byte cap
        run = subprocess.run(argv, env=tier_server.server_env(paths.venv, Path(state)), capture_output=True,
                             timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr).decode(errors="replace")[-3000:]
    assert all(json.loads(line)["response"]["status_code"] == 200 for line in output.read_text().splitlines())

    collected = tmp_path / "collected.jsonl"
    proc = run_mmcli("batch", "collect", str(export), str(output), "-o", str(collected))
    assert proc.returncode == 0, text(proc)
    live = tmp_path / "live.jsonl"
    proc = run_mmcli("ask", "--each", str(tmp_path / "album"), PROMPT, "-o", str(live), "--base-url",
                     vllm_server.base_url, "--model", name, "--family", "qwen2-vl", "--max-tokens", "2",
                     "--temperature", "0")
    assert proc.returncode == 0, text(proc)
    by_id = {r["id"]: r for r in results(collected)}
    for line in results(live):
        mine = by_id[line["id"]]
        assert set(mine) == set(line) - {"seconds"}
        assert mine["verified"] is True and mine["usage"]["prompt_tokens"] == line["usage"]["prompt_tokens"]
        assert mine["plan"]["items"] == line["plan"]["items"]
