"""End to end with the same 12 MP photo: mmcli vs `llm` (when installed) vs a bare httpx script, against the
test tier's real vLLM (tiny random-weight Qwen2-VL, CPU build, started here and stopped at the end).

    flock /tmp/mmcli-tier.lock python bench/e2e.py [--runs 5]

Each run asks about a different variant of the photo (prefix and processor caches would otherwise
answer repeats for free). Prints wall time and the client's own CPU time (user + system of the child
process), medians, side by side. Target: mmcli's CPU time below llm's for the same photo.

The tier's model takes 4096 tokens, so a 12 MP photo sent as it is (as llm sends it) is refused with a
400; the bare script therefore does what a user's script would: Pillow's thumbnail to 1280 px, JPEG,
base64, one httpx post. mmcli resizes to the model's own grid instead.
`llm` is skipped, with a line saying so, when it is not installed; it is pointed at the server through
an extra-openai-models.yaml in a private LLM_USER_PATH.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
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


def variants(work: Path, runs: int) -> list[Path]:
    """`runs` + 1 different 12 MP photos (the first warms everything up)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    base = np.asarray(Image.fromarray(data.astronaut()).resize((4000, 3000), Image.BILINEAR), np.float32)
    paths = []
    for n in range(runs + 1):
        noise = np.random.default_rng(n).normal(0, 3, base.shape)
        path = work / f"photo{n}.jpg"
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def llm_config(work: Path, base_url: str, model: str) -> dict | None:
    """The environment that points `llm` at the server, or None when llm is not installed."""
    if shutil.which("llm") is None:
        return None
    home = work / "llm"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: tier\n  model_name: {model}\n  api_base: \"{base_url}\"\n  vision: true\n")
    return {"LLM_USER_PATH": str(home)}


def series(make_argv, photos: list[Path], env: dict) -> tuple[float, float]:
    """Median wall and CPU over the photos after the first (a warm-up)."""
    timed(make_argv(photos[0]), env)
    samples = [timed(make_argv(photo), env) for photo in photos[1:]]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> None:
    """Start the tier's vLLM, run the clients, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "vllm_tier"))
    import tier

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = environment(work)
        photos = variants(work, args.runs)
        script = work / "bare_photo.py"
        script.write_text(BARE_RESIZED)
        paths = tier.prepare()
        handle = tier.start_server(paths, tier.free_port(), work / "vllm.log")
        try:
            tier.wait_healthy(handle.base_url, 900, handle)
            url, model = handle.base_url, handle.model
            got = {"mmcli": series(lambda p: [sys.executable, "-m", "mmcli", "ask", str(p), "q", "--base-url", url,
                                              "-m", model, *GENERATION], photos, env),
                   "bare httpx": series(lambda p: [sys.executable, str(script), url, str(p), model], photos, env)}
            extra = llm_config(work, url, model)
            if extra is None:
                print("llm: not installed, skipped (pip install llm to compare)")
            else:
                got["llm"] = series(lambda p: ["llm", "-m", "tier", "-a", str(p), "q", "-o", "max_tokens", "4"],
                                    photos, {**env, **extra})
        finally:
            tier.stop_server(handle)
    for name, (wall, cpu) in got.items():
        print(f"{name:12s} wall {wall:6.2f} s   client cpu {cpu:6.2f} s")
    for other in ("llm", "bare httpx"):
        if other in got:
            print(f"mmcli / {other}: wall {got['mmcli'][0] / got[other][0]:.2f}x   "
                  f"cpu {got['mmcli'][1] / got[other][1]:.2f}x" + ("   target: cpu < 1x" if other == "llm" else ""))


if __name__ == "__main__":
    main()
