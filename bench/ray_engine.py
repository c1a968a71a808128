"""The same photos through `--each` and `--engine ray` on this machine, side by side.

    python bench/ray_engine.py [--photos 200] [--concurrency 8] [--delay 0]

Against a scripted server on 127.0.0.1 that answers at once (or after `--delay` seconds a request), so what is
measured is mmcli's side: reading, resizing, encoding and sending each photo, and writing its line. Runs:

  1. `mmcli ask --each DIR PROMPT -o results.jsonl` (threads in one process), with all the photos and with one;
  2. `--engine ray` starting a local Ray of its own and stopping it (what a user without a cluster gets);
  3. `--engine ray --ray-address` of a Ray already running (`ray start --head`, token authentication on, as
     Ray 2.59+ does for a local cluster): with all the photos and with one.

A run of one photo is the fixed cost (start-up, the endpoint's probe, Ray's connection and its workers' start);
(all - one) / (photos - 1) is the cost of a row. Ray's start-up is (2) - (3). From these it prints what a Ray run
would need to beat `--each`. Every run gets a private HOME (Ray 2.60 writes ~/.ray/auth_token there).
Needs the ray extra (pip install -e '.[ray]').
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import signal
import socket
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
    for _ in range(120):
        if head.poll() is not None:
            raise SystemExit("the Ray head stopped at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(1)
            continue
        time.sleep(3)  # the head's other services come up just after its port
        return head
    raise SystemExit("the Ray head did not start")


def private_env(tmp: str) -> dict:
    """This checkout, no endpoint variables, a HOME of its own with a Ray token, token mode on (head and client)."""
    home = Path(tmp) / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(16))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "RAY_"))}
    return dict(env, MMCLI_AUTOSTART="0", PYTHONPATH=str(ROOT), HOME=str(home), XDG_STATE_HOME=tmp,
                XDG_CONFIG_HOME=tmp, RAY_AUTH_MODE="token")


def measure(options: argparse.Namespace, tmp: str, base_url: str) -> dict[str, float]:
    """Seconds of every run, by name."""
    from bench.batch import make_photos

    folder, one = Path(tmp) / "photos", Path(tmp) / "one"
    make_photos(folder, options.photos)
    make_photos(one, 1, seed=1)
    env = private_env(tmp)

    def run(name: str, photos: Path, *extra: str) -> float:
        seconds = timed(["ask", "--each", str(photos), "caption", "--base-url", base_url, "--concurrency",
                         str(options.concurrency), "-o", f"{tmp}/{name}.jsonl", *extra], env)
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
        return seconds

    took = {"each": run("each", folder), "each 1": run("each-1", one),
            "ray starts": run("ray-starts", folder, "--engine", "ray")}
    from tests.support.scripted_server import free_port

    port = free_port()
    head = ray_head(env, port)
    try:
        address = ["--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]
        took["ray joins 1"] = run("joins-1", one, *address)  # also the workers' first start on this head
        took["ray joins"] = run("joins", folder, *address)
        took["ray joins 1 again"] = run("joins-1-again", one, *address)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
    return took


def report(took: dict[str, float], options: argparse.Namespace) -> None:
    """The table, the costs derived from it, and what Ray would need to beat --each."""
    n = options.photos
    print(f"{n} photos (1600x1200 and up), --concurrency {options.concurrency}, server delay {options.delay:g} s, "
          f"{os.cpu_count()} CPUs (shared)")
    rows = (("--each", took["each"]), ("--engine ray, starts its own Ray", took["ray starts"]),
            ("--engine ray, joins a running Ray", took["ray joins"]))
    for name, seconds in rows:
        print(f"  {name:36} {seconds:7.1f} s  {n / seconds:6.1f} photos/s  x{seconds / took['each']:.2f} of --each")
    fixed_each, fixed_ray = took["each 1"], min(took["ray joins 1"], took["ray joins 1 again"])
    row_each = (took["each"] - fixed_each) / (n - 1)
    row_ray = (took["ray joins"] - fixed_ray) / (n - 1)
    print(f"  fixed cost (a run of 1 photo): --each {fixed_each:.1f} s, joining Ray {fixed_ray:.1f} s")
    print(f"  Ray's start-up (starts - joins): {took['ray starts'] - took['ray joins']:.1f} s")
    print(f"  a row: --each {row_each * 1000:.0f} ms, on Ray {row_ray * 1000:.0f} ms "
          f"(Ray's per-row overhead {(row_ray - row_each) * 1000:+.0f} ms)")
    needs(fixed_each, fixed_ray, row_each, row_ray, options)


def needs(fixed_each: float, fixed_ray: float, row_each: float, row_ray: float, options: argparse.Namespace) -> None:
    """Nodes like this one, and the concurrency, a Ray run needs to finish before --each does."""
    nodes = max(1, math.floor(row_ray / row_each) + 1) if row_ray >= row_each else 1
    gain = row_each - row_ray / nodes
    photos = math.ceil(max(0.0, fixed_ray - fixed_each) / gain) if gain > 0 else None
    print(f"  to beat --each: Ray's rows must go faster than one machine's, so {nodes} node(s) like this one "
          f"(row {row_ray * 1000:.0f} ms / {nodes} < {row_each * 1000:.0f} ms), and a run long enough to pay "
          f"Ray's fixed cost back: {photos if photos is not None else '-'} photos or more")
    if options.delay > 0:
        print(f"  with {options.delay:g} s a request the server bounds both: --concurrency C gives "
              f"C / {options.delay:g} "
              f"photos/s; one machine prepares {1 / row_each:.0f} photos/s, so Ray adds speed only past --concurrency "
              f"{math.ceil(options.delay / row_each)} (and servers that can answer that many at once)")
    else:
        print(f"  a server answering in D s a request: --concurrency C allows C / D photos/s on either engine; past "
              f"C = D x {1 / row_each:.0f} (this machine's rate) only more nodes help")


def main() -> None:
    """Run them and print them side by side."""
    from tests.support.scripted_server import Reply, ScriptedServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds the server takes for each request")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(default=Reply("ok", delay=options.delay)) as server:
        took = measure(options, tmp, server.base_url)
    report(took, options)


if __name__ == "__main__":
    main()
