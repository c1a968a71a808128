"""The real-vLLM test tier: a cached vLLM CPU venv, a tiny Qwen2-VL and its server.

    python tests/vllm_tier/tier.py prepare   # build or reuse the venv and the model
    python tests/vllm_tier/tier.py serve     # run a server in the foreground (Ctrl-C stops it)
    python tests/vllm_tier/tier.py paths     # print where the cached pieces live

The cache lives in ``${XDG_CACHE_HOME:-~/.cache}/mmcli-vllm-tier`` (override with
``MMCLI_VLLM_TIER_CACHE``), keyed by the pinned versions, so every clone on a
machine shares one build.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import tier_venv  # noqa: E402
from tier_server import (  # noqa: E402,F401  (re-exported for callers of this module)
    MODEL_NAME, ServerError, ServerHandle, free_port, start_server, stop_server, wait_healthy)
from tier_venv import BuildError, TierUnavailable  # noqa: E402,F401

MODEL_BUILDER = HERE / "tier_model_builder.py"


@dataclass(frozen=True)
class TierPaths:
    """Where the prepared venv and tiny model are."""

    cache_dir: Path
    venv: Path
    model_dir: Path

    @property
    def python(self) -> Path:
        """The tier venv's interpreter."""
        return tier_venv.venv_python(self.venv)


def cache_root() -> Path:
    """Root folder of the tier cache, outside any checkout."""
    override = os.environ.get("MMCLI_VLLM_TIER_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "mmcli-vllm-tier"


def model_key() -> str:
    """Hash of the venv key and the model builder's source: same inputs, same model."""
    digest = hashlib.sha256(tier_venv.venv_key().encode())
    digest.update(MODEL_BUILDER.read_bytes())
    return digest.hexdigest()[:12]


def tier_paths(root: Path | None = None) -> TierPaths:
    """The cache paths for the current pins, whether built or not."""
    root = root or cache_root()
    return TierPaths(cache_dir=root, venv=root / tier_venv.venv_dir_name(),
                     model_dir=root / f"model-{MODEL_NAME}-{model_key()}")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_model(paths: TierPaths) -> None:
    """Run the model builder with the tier venv's python into a temp folder, then rename it."""
    tmp = paths.model_dir.with_name(paths.model_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log_path = paths.cache_dir / f"{paths.model_dir.name}.build.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp / ".hf"))
    log_path.write_text("", encoding="utf-8")
    try:
        tier_venv.run_logged([str(paths.python), str(MODEL_BUILDER), str(tmp)], log_path, env)
        shutil.rmtree(tmp / ".hf", ignore_errors=True)
        os.rename(tmp, paths.model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(log=_log) -> TierPaths:
    """Build or reuse the cached venv and tiny model; idempotent and fast when cached."""
    paths = tier_paths()
    if tier_venv.is_complete(paths.venv) and paths.model_dir.is_dir():
        return paths
    start = time.monotonic()
    with _locked(paths.cache_dir):
        if not tier_venv.is_complete(paths.venv):
            base_python = tier_venv.check_host()  # the toolchain is only needed to build
            tier_venv.build_venv(paths.venv, base_python, log)
        if not paths.model_dir.is_dir():
            log(f"vllm tier: building tiny model in {paths.model_dir}")
            build_model(paths)
    log(f"vllm tier: prepared in {time.monotonic() - start:.0f}s")
    return paths


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(port: int) -> int:
    """Run a server in the foreground until Ctrl-C or SIGTERM."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)  # also when started in the background with SIGINT ignored
    paths = prepare()
    port = port or free_port()
    log_path = paths.cache_dir / "serve" / "server.log"
    handle = start_server(paths, port, log_path)
    try:
        waited = wait_healthy(handle.base_url, 300, handle)
        print(f"vLLM healthy after {waited:.0f}s: --base-url {handle.base_url} --model "
              f"{handle.model} (log: {log_path}); Ctrl-C stops it", flush=True)
        while handle.proc.poll() is None:
            time.sleep(1)
        print(f"vLLM exited with code {handle.proc.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_server(handle)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: prepare, serve or paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="build or reuse the cached venv and tiny model")
    serve_parser = sub.add_parser("serve", help="run a vLLM server in the foreground")
    serve_parser.add_argument("--port", type=int, default=0, help="default: a free port")
    sub.add_parser("paths", help="print the cache paths")
    args = parser.parse_args(argv)
    try:
        if args.command == "paths":
            paths = tier_paths()
            print(f"venv:  {paths.venv} (complete: {tier_venv.is_complete(paths.venv)})\n"
                  f"model: {paths.model_dir} (present: {paths.model_dir.is_dir()})")
            return 0
        if args.command == "serve":
            return serve(args.port)
        start = time.monotonic()
        paths = prepare()
        print(f"vllm tier ready in {time.monotonic() - start:.1f}s\n  python: {paths.python}\n"
              f"  model:  {paths.model_dir}")
        return 0
    except (TierUnavailable, BuildError, ServerError, subprocess.SubprocessError, OSError) as exc:
        print(f"vllm tier: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
