"""What an endpoint serves, asked once and kept for a minute: its models (id, root, max_model_len)
and, for vLLM, its version. Kept under the state folder so back-to-back commands ask only once."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from ..urls import masked_url

if TYPE_CHECKING:
    from ..settings import Endpoint

# Long enough for a burst of commands, short enough that a restarted server is seen soon.
PROBE_TTL = 60.0


@dataclass
class Probe:
    """One look at an endpoint: the models it serves and its vLLM version (None: not vLLM or not asked)."""

    base_url: str  # masked: the cache holds no secret
    models: list[dict]
    version: Optional[str] = None
    version_asked: bool = False
    fetched_at: float = field(default_factory=time.time)

    def entry(self, model: Optional[str]) -> Optional[dict]:
        """The entry of `model`, or the first one when no model is named."""
        return next((m for m in self.models if model is None or m.get("id") == model), None)

    @property
    def is_vllm(self) -> bool:
        """Whether the endpoint looks like vLLM: it has a version, or its models carry max_model_len."""
        return self.version is not None or any(m.get("max_model_len") is not None for m in self.models)

    def to_dict(self) -> dict:
        """The cached form."""
        return {"base_url": self.base_url, "models": self.models, "version": self.version,
                "version_asked": self.version_asked, "fetched_at": self.fetched_at}


def cache_path(base_url: str, environ: Mapping[str, str]) -> Path:
    """Where the probe of `base_url` is kept: one file per endpoint, named by a hash of the masked URL."""
    from ..server.state import state_dir

    digest = hashlib.sha256(masked_url(base_url).encode("utf-8")).hexdigest()[:16]
    return state_dir(environ) / f"probe-{digest}.json"


def cached(base_url: str, environ: Mapping[str, str], *, now: Optional[float] = None) -> Optional[Probe]:
    """The kept probe of `base_url` when it is fresh; None when missing, stale or unreadable."""
    path = cache_path(base_url, environ)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no cache, or one a crash left half-written: ask again
    probe = _from_dict(data)
    now = time.time() if now is None else now
    if probe is None or probe.base_url != masked_url(base_url) or not 0 <= now - probe.fetched_at <= PROBE_TTL:
        return None
    return probe


def _from_dict(data: object) -> Optional[Probe]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        return None
    models = [m for m in data["models"] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    version = data.get("version") if isinstance(data.get("version"), str) else None
    fetched = data.get("fetched_at")
    if not isinstance(fetched, (int, float)) or not isinstance(data.get("base_url"), str):
        return None
    return Probe(data["base_url"], models, version, bool(data.get("version_asked")), float(fetched))


def save(probe: Probe, environ: Mapping[str, str]) -> None:
    """Keep `probe` (atomically); a state folder that cannot be written only means asking again next time."""
    from ..errors import OutputNotWritten
    from ..files import write_atomic
    from ..server.state import ensure_state_dir

    try:
        ensure_state_dir(environ)
        write_atomic(cache_path(probe.base_url, environ), json.dumps(probe.to_dict()).encode("utf-8"), force=True)
    except (OSError, OutputNotWritten):
        pass


def probe(endpoint: "Endpoint", environ: Mapping[str, str], *, want_version: bool = False,
          refresh: bool = False) -> Probe:
    """The endpoint's models (and vLLM version if wanted), from the cache when fresh, else asked and kept."""
    from ..net import openai_routes as client, vllm_routes

    kept = None if refresh else cached(endpoint.base_url, environ)
    if kept is not None and (kept.version_asked or not want_version):
        return kept
    models = kept.models if kept is not None else client.list_models_detailed(endpoint)
    found = Probe(masked_url(endpoint.base_url), [_entry(m) for m in models])
    if want_version:
        found.version, found.version_asked = vllm_routes.server_version(endpoint), True
    save(found, environ)
    return found


def _entry(model: dict) -> dict:
    # Only what mmcli uses: nothing else a server puts in its list is written to disk.
    return {"id": model.get("id"), "root": model.get("root"), "max_model_len": model.get("max_model_len")}
