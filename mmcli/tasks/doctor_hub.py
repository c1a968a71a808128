"""`mmcli doctor`'s look at the model a client command would start by itself: a folder on this disk, a model
in the local model-hub cache, or one only the hub has while the hub cannot be reached (offline, or nothing
answers). Nothing is downloaded; the hub is asked for a TCP connection at most."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from ..errors import ExitCode, MmcliError

if TYPE_CHECKING:
    from .doctor import Check, Machine

HUB_URL = "https://huggingface.co"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_cache(environ: Mapping[str, str]) -> Path:
    """The model hub's local cache, found as the hub's library finds it (its variables first)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(name):
            return Path(environ[name]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base).expanduser() / "huggingface" / "hub"


def in_hub_cache(repo_id: str, environ: Mapping[str, str]) -> bool:
    """Whether a snapshot of `repo_id` with its config.json is in the local cache."""
    snapshots = hub_cache(environ) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        return any((snapshot / "config.json").is_file() for snapshot in snapshots.iterdir())
    except OSError:
        return False


def hub_unreachable(environ: Mapping[str, str], timeout: float) -> Optional[str]:
    """Why the hub cannot be reached from here, or None when it can (or a proxy may reach it: not known)."""
    from urllib.parse import urlsplit

    from ..server.network import port_open

    for name in OFFLINE_VARIABLES:
        if environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    if any(environ.get(name) for name in PROXY_VARIABLES):
        return None
    parts = urlsplit(environ.get("HF_ENDPOINT") or HUB_URL)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # an HF_ENDPOINT that is no URL: the hub's library will say so itself
    if not parts.hostname:
        return None
    if not port_open(parts.hostname, port, timeout=timeout):
        return f"nothing answers at {parts.hostname}:{port}"
    return None


def autostart_blocked(found: "Machine", where: str, timeout: float, environ: Mapping[str, str]) -> Optional["Check"]:
    """A failed check when the model auto-start would serve is neither on this disk nor reachable on the hub."""
    from .doctor import Check
    from ..hints import NO_HUB
    from ..server.command_line import ServeOptions
    from ..server.launch import model_choice, resolve_device

    try:
        opts = resolve_device(ServeOptions(model=found.settings.model or ""), found.vllm)
        model = model_choice(opts.model)
    except MmcliError:
        return None  # auto-start refuses this model itself, with its own message
    if model.local or in_hub_cache(model.source, environ):
        return None
    why = hub_unreachable(environ, timeout)
    if why is None:
        return None
    return Check("endpoint", "fail",
                 f"{where}: nothing answers, and auto-start cannot serve {opts.model} ({model.source}): it is not in "
                 f"the local model cache ({hub_cache(environ)}) and the model hub cannot be reached ({why})",
                 NO_HUB + "; or pick another endpoint with --base-url / --profile", int(ExitCode.UNAVAILABLE))
