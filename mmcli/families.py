"""Model families: the pixel grid, budgets and conventions each kind of model expects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# Qwen2/2.5-VL: 14 px patches merged 2x2 -> one visual token per 28x28 block.
QWEN2_FACTOR = 28
# Qwen3-VL: 16 px patches merged 2x2.
QWEN3_FACTOR = 32
# The client's default budget: 1280 tokens per image (1280 * 28 * 28 pixels for Qwen2/2.5).
DEFAULT_IMAGE_TOKENS = 1280
GENERIC_LONGEST_SIDE = 2048


@dataclass(frozen=True)
class Family:
    """What mmcli needs to know about a family of models."""

    name: str
    factor: Optional[int]  # None: no grid rounding (generic endpoints)
    min_pixels: int
    max_pixels: int
    longest_side: Optional[int]  # generic families cap the longest side instead of a grid
    box_convention: str  # "abs" | "norm1000"
    accepts_video: bool
    video_min_pixels: int = 0
    video_max_pixels: int = 0
    video_total_pixels: int = 0
    audio_encoder: Optional[str] = None  # how audio parts are counted in tokens (media.audio.audio_tokens)


def _qwen(name: str, factor: int, box: str) -> Family:
    return Family(
        name=name,
        factor=factor,
        min_pixels=4 * factor * factor,
        max_pixels=DEFAULT_IMAGE_TOKENS * factor * factor,
        longest_side=None,
        box_convention=box,
        accepts_video=True,
        video_min_pixels=128 * factor * factor,
        video_max_pixels=768 * factor * factor,
        video_total_pixels=int(128000 * factor * factor * 0.9),
    )


def _off_grid(name: str, **extra: object) -> Family:
    """A family with no pixel grid: images keep a longest side, and their token cost is unknown."""
    return Family(name=name, factor=None, min_pixels=1, max_pixels=GENERIC_LONGEST_SIDE * GENERIC_LONGEST_SIDE,
                  longest_side=GENERIC_LONGEST_SIDE, box_convention="norm1000", accepts_video=False, **extra)


FAMILIES: dict[str, Family] = {
    "qwen2-vl": _qwen("qwen2-vl", QWEN2_FACTOR, "norm1000"),
    "qwen2.5-vl": _qwen("qwen2.5-vl", QWEN2_FACTOR, "abs"),
    "qwen3-vl": _qwen("qwen3-vl", QWEN3_FACTOR, "norm1000"),
    # Audio-language models: images are not their business, so no grid; audio tokens are counted.
    "qwen2-audio": _off_grid("qwen2-audio", audio_encoder="qwen2-audio"),
    "generic": _off_grid("generic"),
}

# Order matters: the most specific pattern first ("qwen2.5" before "qwen2").
_NAME_PATTERNS = [
    (re.compile(r"qwen[-_]?3(\.\d+)?[-_]?(vl|omni)"), "qwen3-vl"),
    (re.compile(r"qwen[-_]?2\.5[-_]?(vl|omni)"), "qwen2.5-vl"),
    (re.compile(r"qwen[-_]?2[-_]?vl"), "qwen2-vl"),
    (re.compile(r"qwen[-_]?2[-_]?audio"), "qwen2-audio"),
    # DSE's checkpoints are Qwen2-VL without saying "vl": MrLight/dse-qwen2-2b-mrl-v1.
    (re.compile(r"dse[-_]qwen[-_]?2(?![.\d])"), "qwen2-vl"),
]


def user_max_pixels(family: Family, max_pixels: Optional[int], max_tokens_per_image: Optional[int]
                    ) -> Optional[int]:
    """The per-image pixel cap the user asked for (--max-tokens-per-image beats --max-pixels), if any."""
    if not max_tokens_per_image:
        return max_pixels
    if family.factor is None:
        from .errors import UsageError

        raise UsageError("--max-tokens-per-image needs a grid model family",
                         hint="use --max-pixels for generic endpoints, or --family qwen2.5-vl")
    return max_tokens_per_image * family.factor * family.factor


def family_for_model(model: Optional[str]) -> Family:
    """The family a model id belongs to, judged from its name; generic when unknown."""
    name = (model or "").lower()
    for pattern, family in _NAME_PATTERNS:
        if pattern.search(name):
            return FAMILIES[family]
    return FAMILIES["generic"]


@dataclass(frozen=True)
class ServeAlias:
    """A short name `mmcli serve` accepts for a Hugging Face model vLLM can serve."""

    name: str
    hf_id: str
    family: str  # a FAMILIES key
    max_model_len: int = 32768  # the models' own limits (often 128k) rarely fit next to the weights
    note: str = ""


def _aliases(family: str, default_size: str, sizes: dict[str, str], note: str = "") -> list[ServeAlias]:
    entries = [ServeAlias(family, sizes[default_size], family, note=note)]
    entries += [ServeAlias(f"{family}-{size}", hf_id, family, note=note) for size, hf_id in sizes.items()]
    return entries


# The plain family name serves the size that fits one 24-48 GB GPU.
SERVE_ALIASES: dict[str, ServeAlias] = {alias.name: alias for alias in [
    *_aliases("qwen2-vl", "7b", {"2b": "Qwen/Qwen2-VL-2B-Instruct", "7b": "Qwen/Qwen2-VL-7B-Instruct",
                                 "72b": "Qwen/Qwen2-VL-72B-Instruct"}),
    *_aliases("qwen2.5-vl", "7b", {"3b": "Qwen/Qwen2.5-VL-3B-Instruct", "7b": "Qwen/Qwen2.5-VL-7B-Instruct",
                                   "32b": "Qwen/Qwen2.5-VL-32B-Instruct", "72b": "Qwen/Qwen2.5-VL-72B-Instruct"}),
    *_aliases("qwen3-vl", "8b", {"2b": "Qwen/Qwen3-VL-2B-Instruct", "4b": "Qwen/Qwen3-VL-4B-Instruct",
                                 "8b": "Qwen/Qwen3-VL-8B-Instruct", "32b": "Qwen/Qwen3-VL-32B-Instruct",
                                 "30b-a3b": "Qwen/Qwen3-VL-30B-A3B-Instruct",
                                 "235b-a22b": "Qwen/Qwen3-VL-235B-A22B-Instruct"}),
    ServeAlias("gemma-3-4b", "google/gemma-3-4b-it", "generic", note="gated: accept the licence on Hugging Face"),
    ServeAlias("gemma-3-12b", "google/gemma-3-12b-it", "generic", note="gated: accept the licence on Hugging Face"),
    ServeAlias("gemma-3-27b", "google/gemma-3-27b-it", "generic", note="gated: accept the licence on Hugging Face"),
    ServeAlias("llava-onevision-7b", "llava-hf/llava-onevision-qwen2-7b-ov-hf", "generic"),
    ServeAlias("smolvlm2", "HuggingFaceTB/SmolVLM2-2.2B-Instruct", "generic", max_model_len=8192),
    ServeAlias("pixtral-12b", "mistral-community/pixtral-12b", "generic"),
]}

DEFAULT_SERVE_MODEL = "qwen2.5-vl"

# config.json "model_type" of a local checkpoint -> family, for directories whose name says nothing.
MODEL_TYPE_FAMILIES = {
    "qwen2_vl": "qwen2-vl",
    "qwen2_5_vl": "qwen2.5-vl",
    "qwen3_vl": "qwen3-vl",
    "qwen3_vl_moe": "qwen3-vl",
    "qwen2_audio": "qwen2-audio",
}


def serve_alias(name: str) -> Optional[ServeAlias]:
    """The serve alias called `name` (case-insensitive), if there is one."""
    return SERVE_ALIASES.get(name.lower())
