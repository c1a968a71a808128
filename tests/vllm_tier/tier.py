"""The real-vLLM test tier: a cached vLLM CPU venv, tiny Qwen VL models and their servers.

    python tests/vllm_tier/tier.py prepare   # build or reuse the venv and the models
    python tests/vllm_tier/tier.py serve     # run a server in the foreground (Ctrl-C stops it)
    python tests/vllm_tier/tier.py serve --family qwen3-vl   # another tiny model
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
    FAMILIES,
    MODEL_NAME,
    MODEL_NAMES,
    ServerError,
    ServerHandle,
    free_port,
    start_server,
    stop_server,
    wait_healthy,
)
from tier_venv import BuildError, TierUnavailable  # noqa: E402,F401

MODEL_BUILDER = HERE / "tier_model_builder.py"
MODEL_RECIPES = HERE / "tier_model_families.py"
AUDIO_BUILDER = HERE / "tier_audio_model.py"


@dataclass(frozen=True)
class TierPaths:
    """Where the prepared venv and tiny models are."""

    cache_dir: Path
    venv: Path
    models: dict[str, Path]  # family -> model folder

    @property
    def model_dir(self) -> Path:
        """The tiny Qwen2-VL's folder (the default model of the tier)."""
        return self.models["qwen2-vl"]

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


def model_key(family: str) -> str:
    """Hash of the venv key, the builder's sources and the family: same inputs, same model."""
    digest = hashlib.sha256(tier_venv.venv_key().encode())
    digest.update(MODEL_BUILDER.read_bytes())
    digest.update(MODEL_RECIPES.read_bytes())
    digest.update(family.encode())
    return digest.hexdigest()[:12]


def tier_paths(root: Path | None = None) -> TierPaths:
    """The cache paths for the current pins, whether built or not."""
    root = root or cache_root()
    models = {family: root / f"model-{MODEL_NAMES[family]}-{model_key(family)}"
              for family in FAMILIES}
    return TierPaths(cache_dir=root, venv=root / tier_venv.venv_dir_name(), models=models)


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


def missing_models(paths: TierPaths) -> list[str]:
    """The families whose model folder is not built yet."""
    return [family for family, folder in paths.models.items() if not folder.is_dir()]


def build_models(paths: TierPaths, families: list[str]) -> None:
    """Run the model builder once (with the tier venv's python) into temp folders, then rename them."""
    temps = {family: paths.models[family].with_name(f"{paths.models[family].name}.tmp-{os.getpid()}")
             for family in families}
    hf_home = paths.cache_dir / f".hf-build-{os.getpid()}"
    log_path = paths.cache_dir / "models.build.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(hf_home))
    log_path.write_text("", encoding="utf-8")
    argv = [str(paths.python), str(MODEL_BUILDER)]
    for family, tmp in temps.items():
        shutil.rmtree(tmp, ignore_errors=True)
        argv += [family, str(tmp)]
    try:
        tier_venv.run_logged(argv, log_path, env)
        for family, tmp in temps.items():
            os.rename(tmp, paths.models[family])
    finally:
        for tmp in [*temps.values(), hf_home]:
            shutil.rmtree(tmp, ignore_errors=True)


def prepare(log=_log) -> TierPaths:
    """Build or reuse the cached venv and tiny models; idempotent and fast when cached."""
    paths = tier_paths()
    if tier_venv.is_complete(paths.venv) and not missing_models(paths):
        return paths
    start = time.monotonic()
    with _locked(paths.cache_dir):
        if not tier_venv.is_complete(paths.venv):
            base_python = tier_venv.check_host()  # the toolchain is only needed to build
            tier_venv.build_venv(paths.venv, base_python, log)
        missing = missing_models(paths)
        if missing:
            log(f"vllm tier: building tiny models {', '.join(missing)} in {paths.cache_dir}")
            build_models(paths, missing)
    log(f"vllm tier: prepared in {time.monotonic() - start:.0f}s")
    return paths


def prepare_audio_model(paths: TierPaths, log=_log) -> Path:
    """Build or reuse the tiny Qwen2-Audio (its own folder: the VL tests never serve it)."""
    digest = hashlib.sha256(tier_venv.venv_key().encode())
    for source in (MODEL_BUILDER, AUDIO_BUILDER):
        digest.update(source.read_bytes())
    folder = paths.cache_dir / f"model-qwen2-audio-tiny-{digest.hexdigest()[:12]}"
    if folder.is_dir():
        return folder
    with _locked(paths.cache_dir):
        if not folder.is_dir():
            log(f"vllm tier: building the tiny Qwen2-Audio in {folder}")
            tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
            hf_home = paths.cache_dir / f".hf-build-{os.getpid()}"
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(hf_home))
            try:
                tier_venv.run_logged([str(paths.python), str(AUDIO_BUILDER), str(tmp)],
                                     paths.cache_dir / "audio-model.build.log", env)
                os.rename(tmp, folder)
            finally:
                for path in (tmp, hf_home):
                    shutil.rmtree(path, ignore_errors=True)
    return folder


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(port: int, family: str = "qwen2-vl") -> int:
    """Run a server in the foreground until Ctrl-C or SIGTERM."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)  # also when started in the background with SIGINT ignored
    paths = prepare()
    port = port or free_port()
    log_path = paths.cache_dir / "serve" / "server.log"
    handle = start_server(paths, port, log_path, family=family)
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
    sub.add_parser("prepare", help="build or reuse the cached venv and tiny models")
    serve_parser = sub.add_parser("serve", help="run a vLLM server in the foreground")
    serve_parser.add_argument("--port", type=int, default=0, help="default: a free port")
    serve_parser.add_argument("--family", choices=FAMILIES, default="qwen2-vl",
                              help="which tiny model to serve (default: qwen2-vl)")
    sub.add_parser("paths", help="print the cache paths")
    args = parser.parse_args(argv)
    try:
        if args.command == "paths":
            paths = tier_paths()
            print(f"venv:  {paths.venv} (complete: {tier_venv.is_complete(paths.venv)})")
            for family, folder in paths.models.items():
                print(f"model: {folder} ({family}, present: {folder.is_dir()})")
            return 0
        if args.command == "serve":
            return serve(args.port, args.family)
        start = time.monotonic()
        paths = prepare()
        print(f"vllm tier ready in {time.monotonic() - start:.1f}s\n  python: {paths.python}")
        for family, folder in paths.models.items():
            print(f"  model:  {folder} ({family})")
        return 0
    except (TierUnavailable, BuildError, ServerError, subprocess.SubprocessError, OSError) as exc:
        print(f"vllm tier: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
