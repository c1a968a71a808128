"""The client's own cost: mmcli vs a bare httpx script, side by side against a scripted local server.

    python bench/overhead.py [--runs 7]

Each case runs as its own process (as a user runs it), timed from outside: wall time and CPU time
(user + system of the child), medians and ranges over --runs, after one warm-up run each (so every .pyc
exists). The cases take turns run by run, so a busy machine slows them all alike.

  text:  `mmcli ask "hi"` vs a bare script posting the very same request body with httpx2.post;
  photo: `mmcli ask PHOTO q` on a 12 MP JPEG vs the bare text script (the issue's yardstick), and vs a
         bare script that sends the photo's file as is (no resize: what mmcli saves the server); the model
         id `m` names no family, so the photo is sent at a longest side of 2048 px (a full-scale decode);
         with --family qwen2.5-vl (1280 visual tokens) it is decoded at half scale;
  20 questions from one Python process through mmcli.Client vs 20 posts of one bare httpx client.

Targets: text <= 1.6x the bare script; photo <= 2.3x the bare text script; 20 questions <= 2x.
The server answers at once, so the times are the clients' own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE_POST = """import json, sys
import httpx2
body = json.load(open(sys.argv[2]))
reply = httpx2.post(sys.argv[1] + "/chat/completions", json=body, headers={"Authorization": "Bearer x"}, timeout=120)
reply.raise_for_status()
sys.stdout.write(reply.text[:0])
"""

BARE_PHOTO = """import base64, sys
import httpx2
data = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
body = {"model": "m", "messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + data}}, {"type": "text", "text": "q"}]}]}
httpx2.post(sys.argv[1] + "/chat/completions", json=body, headers={"Authorization": "Bearer x"}, timeout=120).raise_for_status()
"""

BARE_MANY = """import json, sys
import httpx2
body = json.load(open(sys.argv[2]))
with httpx2.Client(headers={"Authorization": "Bearer x"}, timeout=120) as http:
    for _ in range(20):
        http.post(sys.argv[1] + "/chat/completions", json=body).raise_for_status()
"""

MMCLI_MANY = """import sys
import mmcli
client = mmcli.Client(base_url=sys.argv[1], model="m", autostart=False)
for _ in range(20):
    client.ask([], "hi", stream=False)
"""


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run; fails loudly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved(cases: dict[str, list[str]], env: dict, runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) samples of every case, one warm-up each, then `runs` rounds taking turns."""
    for argv in cases.values():
        timed(argv, env)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(timed(argv, env))
    return samples


def median_of(samples: list[tuple[float, float]], which: int) -> float:
    """The median of one column (0 wall, 1 CPU)."""
    return statistics.median(s[which] for s in samples)


def spread(samples: list[tuple[float, float]], which: int) -> str:
    """Median and range of one column."""
    values = [s[which] for s in samples]
    return f"{statistics.median(values):6.3f} s ({min(values):.3f}-{max(values):.3f})"


def make_photo(path: Path) -> Path:
    """A 12 MP (4000x3000) phone-like JPEG: a sample photo scaled up, with sensor noise."""
    import numpy as np
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((4000, 3000), Image.BILINEAR)
    noise = np.random.default_rng(0).normal(0, 3, (3000, 4000, 3))
    Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def environment(work: Path) -> dict:
    """A clean environment: no endpoint variables, no auto-start, bytecode cached as an installed package's is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "PYTHONDONTWRITEBYTECODE"))}
    env.update(XDG_CONFIG_HOME=str(work / "config"), XDG_STATE_HOME=str(work / "state"), MMCLI_AUTOSTART="0",
               PYTHONPYCACHEPREFIX=str(work / "pycache"), MMCLI_API_KEY="x",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))  # this checkout's mmcli
    return env


def main() -> None:
    """Run every case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from tests.support.scripted_server import ScriptedServer

    with tempfile.TemporaryDirectory() as tmp, ScriptedServer() as server:
        work = Path(tmp)
        env = environment(work)
        photo = make_photo(work / "photo.jpg")
        py, url = sys.executable, server.base_url
        mm = [py, "-m", "mmcli", "ask", "--base-url", url, "-m", "m"]
        plan = subprocess.run([*mm, "hi", "--dry-run", "--json"], env=env, cwd=ROOT, capture_output=True, check=True)
        body = work / "text.json"
        body.write_text(json.dumps(json.loads(plan.stdout)["request"]))
        scripts = {}
        for name, text in (("post", BARE_POST), ("photo", BARE_PHOTO), ("many", BARE_MANY), ("mmcli_many", MMCLI_MANY)):
            scripts[name] = work / f"{name}.py"
            scripts[name].write_text(text)
        cases = {
            "bare text": [py, str(scripts["post"]), url, str(body)],
            "mmcli text": [*mm, "hi"],
            "bare photo (file as is)": [py, str(scripts["photo"]), url, str(photo)],
            "mmcli 12 MP photo": [*mm, str(photo), "q"],
            "mmcli 12 MP photo, qwen2.5-vl": [*mm, "--family", "qwen2.5-vl", str(photo), "q"],
            "bare 20 posts": [py, str(scripts["many"]), url, str(body)],
            "mmcli.Client 20 asks": [py, str(scripts["mmcli_many"]), url],
        }
        got = interleaved(cases, env, args.runs)
    print(f"medians (min-max) of {args.runs} runs")
    for name, samples in got.items():
        print(f"{name:31s} wall {spread(samples, 0)}   cpu {spread(samples, 1)}")
    print()
    for mine, bare, target in (("mmcli text", "bare text", 1.6), ("mmcli 12 MP photo", "bare text", 2.3),
                               ("mmcli 12 MP photo, qwen2.5-vl", "bare text", None),
                               ("mmcli 12 MP photo", "bare photo (file as is)", None),
                               ("mmcli.Client 20 asks", "bare 20 posts", 2.0)):
        wall = median_of(got[mine], 0) / median_of(got[bare], 0)
        cpu = median_of(got[mine], 1) / median_of(got[bare], 1)
        goal = f"   target <= {target}x" if target else ""
        print(f"{mine} / {bare}: wall {wall:.2f}x   cpu {cpu:.2f}x{goal}")

if __name__ == "__main__":
    main()
