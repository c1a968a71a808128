"""End to end with the same photo: mmcli vs `llm` (when installed) vs a bare httpx script, against the
test tier's real vLLM (tiny random-weight Qwen2-VL, CPU build, started here and stopped at the end).

    python bench/e2e.py [--runs 5] [--photo-size 2016x1512] [--llm PATH]

Each run asks about a different variant of the photo (prefix and processor caches would otherwise
answer repeats for free). Prints wall time and the client's own CPU time (user + system of the child
process), medians and spread, side by side. Target: mmcli's CPU time below llm's for the same photo.

The tier's model takes 4,096 tokens and llm sends a photo as it is, so a 12 MP photo (about 15,400
visual tokens) is refused; the default photo is therefore 2016x1512 (3 MP, 3,888 tokens as sent), the
largest 4:3 phone-like photo that fits. mmcli resizes it to its family's budget; the bare script does
what a user's script would: Pillow's thumbnail to 1280 px, JPEG, base64, one httpx post.
`llm` is the executable given by --llm (or $MMCLI_BENCH_LLM, or `llm` on PATH); skipped, with a line
saying so, when there is none. It is pointed at the server through an extra-openai-models.yaml in a
private LLM_USER_PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import ROOT, environment, timed  # noqa: E402 - the bench folder's own module

GENERATION = ["--max-tokens", "4", "--temperature", "0"]
BARE_RESIZED = """import base64, io, sys
import httpx2
from PIL import Image
image = Image.open(sys.argv[2]).convert("RGB")
image.thumbnail((1280, 1280))
buffer = io.BytesIO()
image.save(buffer, "JPEG", quality=90)
data = base64.b64encode(buffer.getvalue()).decode()
body = {"model": sys.argv[3], "max_tokens": 4, "temperature": 0, "messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + data}}, {"type": "text", "text": "q"}]}]}
httpx2.post(sys.argv[1] + "/chat/completions", json=body, headers={"Authorization": "Bearer x"}, timeout=600).raise_for_status()
"""


def variants(work: Path, runs: int, size: tuple[int, int]) -> list[Path]:
    """`runs` + 1 different photos of `size` (the first warms everything up)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    base = np.asarray(Image.fromarray(data.astronaut()).resize(size, Image.BILINEAR), np.float32)
    paths = []
    for n in range(runs + 1):
        noise = np.random.default_rng(n).normal(0, 3, base.shape)
        path = work / f"photo{n}.jpg"
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def llm_config(work: Path, base_url: str, model: str) -> dict:
    """The environment that points `llm` at the server."""
    home = work / "llm"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: tier\n  model_name: {model}\n  api_base: \"{base_url}\"\n  vision: true\n")
    return {"LLM_USER_PATH": str(home)}


def series(make_argv, photos: list[Path], env: dict) -> list[tuple[float, float]]:
    """(wall, CPU) of each photo after the first (a warm-up)."""
    timed(make_argv(photos[0]), env)
    return [timed(make_argv(photo), env) for photo in photos[1:]]


def summary(samples: list[tuple[float, float]], which: int) -> str:
    """Median and range of one column of samples."""
    values = [s[which] for s in samples]
    return f"{statistics.median(values):6.2f} s ({min(values):.2f}-{max(values):.2f})"


def llm_executable(given: str | None) -> str | None:
    """The llm to compare with: --llm, $MMCLI_BENCH_LLM, or `llm` on PATH."""
    return given or os.environ.get("MMCLI_BENCH_LLM") or shutil.which("llm")


def main() -> None:
    """Start the tier's vLLM, run the clients, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photo-size", default="2016x1512", help="WIDTHxHEIGHT of the photos (default 2016x1512)")
    parser.add_argument("--llm", help="the llm executable (default: $MMCLI_BENCH_LLM, or llm on PATH)")
    args = parser.parse_args()
    size = tuple(int(n) for n in args.photo_size.lower().split("x"))
    sys.path.insert(0, str(ROOT / "tests" / "vllm_tier"))
    import tier

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = environment(work)
        photos = variants(work, args.runs, size)
        script = work / "bare_photo.py"
        script.write_text(BARE_RESIZED)
        paths = tier.prepare()
        handle = tier.start_server(paths, tier.free_port(), work / "vllm.log")
        try:
            tier.wait_healthy(handle.base_url, 900, handle)
            got = run_clients(handle.base_url, handle.model, photos, env, script, llm_executable(args.llm), work)
        finally:
            tier.stop_server(handle)
    report(got, size, args.runs)


def run_clients(url: str, model: str, photos: list[Path], env: dict, script: Path, llm: str | None,
                work: Path) -> dict:
    """Each client's samples over the same photos."""
    got = {"mmcli": series(lambda p: [sys.executable, "-m", "mmcli", "ask", str(p), "q", "--base-url", url,
                                      "-m", model, *GENERATION], photos, env),
           "bare httpx": series(lambda p: [sys.executable, str(script), url, str(p), model], photos, env)}
    if llm is None:
        print("llm: not installed, skipped (pass --llm PATH, or pip install llm, to compare)")
    else:
        extra = llm_config(work, url, model)
        got["llm"] = series(lambda p: [llm, "-m", "tier", "-a", str(p), "q", "-o", "max_tokens", "4"],
                            photos, {**env, **extra})
    return got


def report(got: dict, size: tuple[int, int], runs: int) -> None:
    """The side-by-side table: medians, ranges, ratios."""
    print(f"photo: {size[0]}x{size[1]} JPEG ({size[0] * size[1] / 1e6:.1f} MP), a different one per run; "
          f"medians (min-max) of {runs} runs")
    for name, samples in got.items():
        print(f"{name:12s} wall {summary(samples, 0)}   client cpu {summary(samples, 1)}")
    med = {name: (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
           for name, samples in got.items()}
    for other in ("llm", "bare httpx"):
        if other in med:
            print(f"mmcli / {other}: wall {med['mmcli'][0] / med[other][0]:.2f}x   "
                  f"cpu {med['mmcli'][1] / med[other][1]:.2f}x" + ("   target: cpu < 1x" if other == "llm" else ""))

if __name__ == "__main__":
    main()
