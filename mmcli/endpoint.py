"""The endpoint step: find (or start) the server, attach what mmcli knows of it, pick the model and family."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Optional

from .errors import UsageError
from .models import FAMILIES, Family, family_for_model

if TYPE_CHECKING:
    from .config import Settings
    from .render import Output


@dataclass(frozen=True)
class Target:
    """Where requests go and what they are sized for: settings, model, family and why that family."""

    settings: "Settings"
    model: Optional[str]
    family: Family
    family_source: str  # flag, profile, id, root, server or default
    max_model_len: Optional[int] = None

    @property
    def base_url(self) -> str:
        """The endpoint's base URL."""
        return self.settings.endpoint.base_url


def attach_server(settings: "Settings", environ: Mapping[str, str]) -> "Settings":
    """Settings pointed at the server `mmcli serve` started, when they aim at it or at the default address."""
    from .server.state import read_key, running_server

    server = running_server(environ)
    endpoint = settings.endpoint
    if server is None or not (settings.default_local or server.base_url == endpoint.base_url):
        return settings
    profile = replace(endpoint.profile, model=endpoint.profile.model or server.model,
                      family=endpoint.profile.family or server.family,
                      quirks=replace(endpoint.profile.quirks, frame_limit=server.frame_limit,
                                     media_io_kwargs=server.request_mm_kwargs))
    key = endpoint.api_key
    if server.key_file and not settings.key_named:
        key = read_key(server.key_file)
        if key is None:
            raise UsageError("cannot read the API key of the server mmcli started", where=server.key_file,
                             hint="restart it: mmcli serve stop, then mmcli serve ... again")
    endpoint = replace(endpoint, base_url=server.base_url, profile=profile, api_key=key)
    return replace(settings, endpoint=endpoint, model=settings.model or server.model,
                   family=settings.family or server.family,
                   family_source=settings.family_source or ("server" if server.family else ""))


def connect(settings: "Settings", out: "Output", *, dry_run: bool,
            environ: Optional[Mapping[str, str]] = None) -> Target:
    """Start the local server if it is missing (not for a dry run), then learn the model and its family."""
    environ = os.environ if environ is None else environ
    if not dry_run:
        from .server.launch import ensure_local_server

        ensure_local_server(settings, out, environ)
    settings = attach_server(settings, environ)
    model, root, max_len = settings.model, None, None
    if not dry_run and (model is None or (not settings.family and family_for_model(model).name == "generic")):
        model, root, max_len = _served(settings, model, out)
    family, source = judge_family(settings, model, root)
    return Target(settings, model, family, source, max_len)


def _served(settings: "Settings", model: Optional[str], out: "Output") -> tuple[str, Optional[str], Optional[int]]:
    """(model, root, max_model_len) from GET /models: the named model's entry, else the first one."""
    from . import client
    from .errors import MmcliError, RequestRejected

    with out.spinner("asking the endpoint which model it serves"):
        if model is None:
            served = client.list_models_detailed(settings.endpoint)
        else:
            try:  # only to learn the family from the model's root: an endpoint without /models is fine
                served = client.list_models_detailed(settings.endpoint)
            except MmcliError:
                return model, None, None
    if model is None and not served:
        raise RequestRejected("the endpoint serves no models", where=settings.endpoint.base_url,
                              hint="pass --model NAME")
    entry = next((m for m in served if model is None or m.get("id") == model), None)
    if entry is None:
        return model, None, None
    return entry["id"], entry.get("root"), entry.get("max_model_len")


def judge_family(settings: "Settings", model: Optional[str], root: Optional[str]) -> tuple[Family, str]:
    """The family and where it came from: flag or profile, then the model id, then its root, else generic."""
    if settings.family:
        return FAMILIES[settings.family], settings.family_source or "profile"
    if model is None:
        # A dry run with no model: assume the local default, a Qwen2.5-VL server.
        if settings.endpoint.profile.name == "local":
            return FAMILIES["qwen2.5-vl"], "default"
        return FAMILIES["generic"], "default"
    by_id = family_for_model(model)
    if by_id.name != "generic":
        return by_id, "id"
    by_root = family_for_model(root)
    if root and by_root.name != "generic":
        return by_root, "root"
    return by_id, "default"
