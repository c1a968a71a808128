"""Settings that let vLLM's CPU build start on an ordinary machine: the KV cache sized from the memory
that is free, OpenMP threads from the cores, and a context length that fits that cache."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

GIB = 1024 ** 3
CPU_DEFAULT_MODEL = "qwen2-vl-2b"  # Qwen/Qwen2-VL-2B-Instruct: Apache-2.0, in vLLM's CPU test set
CPU_MAX_MODEL_LEN = 16384  # a longer prompt takes minutes on a CPU; beyond this, say so with --max-model-len
MAX_KV_GIB = 8
SEQUENCES = 4  # full-length requests the KV cache is sized for
OVERHEAD_GIB = 2.5  # the API server, the engine process, torch and the processor, besides the weights
# Bytes of weights per parameter in bf16, and the weights of hub models whose size only their name tells.
_BF16 = 2
_DEFAULT_WEIGHTS_GIB = 5.0
_SIZE_WORDS = {"2b": 2.2, "3b": 3.8, "4b": 4.4, "7b": 8.3, "8b": 8.8}
_KV_BYTES_PER_TOKEN = 2 * 28 * 2 * 128 * _BF16  # Qwen2-VL-2B: K and V, 28 layers, 2 KV heads of 128


@dataclass(frozen=True)
class Machine:
    """What this machine offers a CPU server: memory free now and the cores this process may use."""

    available_bytes: Optional[int]
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class CpuPlan:
    """What mmcli sets for vLLM's CPU build, and why (notes shown when the server starts)."""

    kv_cache_gib: int
    threads_bind: str  # VLLM_CPU_OMP_THREADS_BIND
    max_model_len: Optional[int]
    notes: tuple[str, ...] = ()


def machine_now() -> Machine:
    """Free memory (MemAvailable) and the usable cores of this machine."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = tuple(range(os.cpu_count() or 1))
    return Machine(available, cpus)


def weights_bytes(source: str, local: bool) -> float:
    """The model's weights in bytes: the files of a local folder, else judged from the hub id's size."""
    if local:
        files = [p for p in Path(source).glob("*") if p.suffix in (".safetensors", ".bin", ".pt")]
        if files:
            return float(sum(p.stat().st_size for p in files))
    name = source.lower()
    for word, billions in _SIZE_WORDS.items():
        if f"-{word}" in name:
            return billions * 1e9 * _BF16
    return _DEFAULT_WEIGHTS_GIB * GIB


def pace(source: str, local: bool) -> str:
    """What to expect of answers on a CPU; the model's size is named only when its hub id says it."""
    name = source.lower()
    size = next((word.upper() for word in _SIZE_WORDS if not local and f"-{word}" in name), None)
    with_size = f" with a {size} model" if size else ""
    return ("on a CPU an answer takes time: from a few seconds for a short answer about a small image to "
            f"minutes for a large image, a video or a long answer{with_size}; --max-tokens and "
            "--max-tokens-per-image keep it short")


def kv_bytes_per_token(source: str, local: bool) -> int:
    """KV-cache bytes per token from a local config.json (keys and values of every layer), else a 2B's."""
    if not local:
        return _KV_BYTES_PER_TOKEN
    try:
        config = json.loads((Path(source) / "config.json").read_text(encoding="utf-8"))
        text = config.get("text_config") or config
        heads = int(text["num_attention_heads"])
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
        found = 2 * int(text["num_hidden_layers"]) * int(text.get("num_key_value_heads") or heads) * head_dim * _BF16
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError):
        return _KV_BYTES_PER_TOKEN
    return found if found > 0 else _KV_BYTES_PER_TOKEN  # a config that says 0 layers (or less) says nothing


def model_max_len(source: str, local: bool) -> Optional[int]:
    """The model's own context length (a local folder's max_position_embeddings), if known."""
    if not local:
        return None
    try:
        config = json.loads((Path(source) / "config.json").read_text(encoding="utf-8"))
        text = config.get("text_config") or config
        own = int(text["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return own if own > 0 else None


def threads_bind(cpus: tuple[int, ...]) -> str:
    """The cores vLLM's engine computes on: all usable ones but one, kept for the API server."""
    chosen = cpus[:-1] if len(cpus) > 1 else cpus
    return ",".join(str(c) for c in chosen) if chosen else "auto"


def plan_cpu(machine: Machine, source: str, local: bool, *, kv_cache_gib: Optional[int],
             max_model_len: Optional[int]) -> CpuPlan:
    """KV cache, threads and context length for serving `source` on this machine's CPU."""
    weights = weights_bytes(source, local)
    per_token = kv_bytes_per_token(source, local)
    # Enough for a few full-length requests at once; more would only hold memory others could use.
    wanted = max(1, math.ceil(SEQUENCES * CPU_MAX_MODEL_LEN * per_token / GIB))
    notes = []
    if kv_cache_gib is None:
        if machine.available_bytes is None:
            kv_cache_gib = 1
            notes.append("free memory unknown: a 1 GiB KV cache (--cpu-kv-cache-gib sets it)")
        else:
            spare = (machine.available_bytes - weights) / GIB - OVERHEAD_GIB
            kv_cache_gib = max(1, min(MAX_KV_GIB, wanted, int(spare / 2)))
            free_gib = machine.available_bytes / GIB
            notes.append(f"{free_gib:.1f} GiB free: KV cache {kv_cache_gib} GiB beside about "
                         f"{weights / GIB:.1f} GiB of weights")
            if spare < 1:
                notes.append("that is less memory than the model needs; the start may fail: close other "
                             "programs or serve a smaller model")
    if max_model_len is None:
        fits = kv_cache_gib * GIB // per_token
        own = model_max_len(source, local)
        max_model_len = int(min(CPU_MAX_MODEL_LEN, fits, own or CPU_MAX_MODEL_LEN))
        notes.append(f"context length {max_model_len} tokens")
    bind = threads_bind(machine.cpus)
    notes.append(f"{len(bind.split(','))} compute thread(s) on cores {bind}" if bind != "auto" else "threads: auto")
    return CpuPlan(kv_cache_gib, bind, max_model_len, tuple(notes))
