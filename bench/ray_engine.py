"""The same photos through `--each` and `--engine ray` on this machine, side by side.

    python bench/ray_engine.py [--photos 200] [--concurrency 8]

Against a scripted server on 127.0.0.1 that answers at once, so what is measured is mmcli's side: reading,
resizing, encoding and sending each photo, and writing its line. Three runs of the same photos:

  1. `mmcli ask --each DIR PROMPT -o results.jsonl` (threads in one process);
  2. `--engine ray`: a local Ray started by the run and stopped after it (what a user without a cluster gets);
  3. `--engine ray --ray-address` of a Ray already running: the run's own cost without Ray's start-up.

Prints seconds and photos per second of each and the ratios; (3) - (1) over the photo count is Ray's per-row
overhead here, (2) - (3) its start-up. Needs the ray extra (pip install -e '.[ray]').
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(args: list[str], env: dict) -> float:
    """Seconds one `python -m mmcli ARGS` takes; fails loudly."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mmcli", *args], cwd=ROOT, capture_output=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"mmcli failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return time.perf_counter() - started


def ray_head(env: dict, port: int) -> subprocess.Popen:
    """A local Ray head (2 CPUs) in its own process group, ready when its port answers."""
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    import socket

    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(1)
            continue
        time.sleep(3)  # the head's other services come up just after its port
        return head
    raise SystemExit("the Ray head did not start")


def main() -> None:
    """Run the three and print them side by side."""
    from bench.batch import make_photos
    from tests.support.scripted_server import ScriptedServer, free_port

    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer() as server:
        folder = Path(tmp) / "photos"
        make_photos(folder, options.photos)
        env = dict(os.environ, MMCLI_AUTOSTART="0", PYTHONPATH=str(ROOT), XDG_STATE_HOME=tmp, XDG_CONFIG_HOME=tmp)
        common = ["ask", "--each", str(folder), "caption", "--base-url", server.base_url,
                  "--concurrency", str(options.concurrency)]
        each = timed([*common, "-o", f"{tmp}/each.jsonl"], env)
        print(f"--each: {each:.1f} s", flush=True)
        started = timed([*common, "-o", f"{tmp}/ray.jsonl", "--engine", "ray"], env)
        print(f"--engine ray (starts Ray): {started:.1f} s", flush=True)
        port = free_port()
        head = ray_head(env, port)
        try:
            joined = timed([*common, "-o", f"{tmp}/joined.jsonl", "--engine", "ray", "--ray-address",
                            f"127.0.0.1:{port}"], env)
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
    n = options.photos
    print(f"{n} photos, --concurrency {options.concurrency}, {os.cpu_count()} CPUs")
    for name, seconds in (("--each", each), ("--engine ray (starts Ray)", started), ("--engine ray (joins Ray)", joined)):
        print(f"  {name:28} {seconds:7.1f} s  {n / seconds:6.1f} photos/s  x{seconds / each:.2f} of --each")
    print(f"  Ray start-up ~{started - joined:.1f} s; per-row overhead ~{(joined - each) / n * 1000:.0f} ms")


if __name__ == "__main__":
    main()
