"""Where a model auto-start or `mmcli serve` would load comes from: the local model-hub cache, or the hub
itself when it can be reached. Nothing is downloaded; the hub is asked for a TCP connection at most."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

HUB_URL = "https://huggingface.co"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_cache(environ: Mapping[str, str]) -> Path:
    """The model hub's local cache, found as the hub's library finds it (its variables first)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(name):
            return _expanded(environ[name])
    if environ.get("HF_HOME"):
        return _expanded(environ["HF_HOME"]) / "hub"
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return _expanded(base) / "huggingface" / "hub"


def _expanded(text: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # `~someone` of no such user: no cache there, the path is taken as written
        return Path(text)


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

    from .network import port_open

    for name in OFFLINE_VARIABLES:
        if environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    if any(environ.get(name) for name in PROXY_VARIABLES):
        return None
    try:  # urlsplit itself raises on some (`http://[::1`), .port on others (`h:99999`)
        parts = urlsplit(environ.get("HF_ENDPOINT") or HUB_URL)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # an HF_ENDPOINT that is no URL: the hub's library will say so itself
    if not parts.hostname:
        return None
    if not port_open(parts.hostname, port, timeout=timeout):
        return f"nothing answers at {parts.hostname}:{port}"
    return None


def hub_blocked(source: str, local: bool, environ: Mapping[str, str], timeout: float) -> Optional[str]:
    """Why the model `source` cannot be loaded here (not on this disk, not in the cache, the hub out of reach),
    or None when it can be, or may be."""
    if local or in_hub_cache(source, environ):
        return None
    why = hub_unreachable(environ, timeout)
    if why is None:
        return None
    return (f"it is not in the local model cache ({hub_cache(environ)}) and the model hub cannot be reached "
            f"({why})")
