"""The endpoint step: find (or start) the server, attach what mmcli knows of it, pick the model and family."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Optional

from ..urls import masked_url
from ..errors import UsageError
from ..families import FAMILIES, Family, family_for_model

if TYPE_CHECKING:
    from ..settings import Settings
    from ..events import Events


@dataclass(frozen=True)
class Target:
    """Where requests go and what they are sized for: settings, model, family and why that family."""

    settings: "Settings"
    model: Optional[str]
    family: Family
    family_source: str  # flag, profile, id, root, server or default
    max_model_len: Optional[int] = None
    notes: tuple[str, ...] = ()  # for the plan: e.g. that nothing told the family

    @property
    def base_url(self) -> str:
        """The endpoint's base URL."""
        return self.settings.endpoint.base_url


def attach_server(settings: "Settings", environ: Mapping[str, str]) -> "Settings":
    """Settings pointed at the server `mmcli serve` started, when they aim at it or at the default address."""
    from ..server.state import read_key, running_server, serves

    server = running_server(environ)
    endpoint = settings.endpoint
    if server is None or not (settings.default_local or server.base_url == endpoint.base_url):
        return settings
    if settings.model and settings.model != server.model and serves(server, settings.model):
        # The profile names the model as a folder, hub id or alias: vLLM knows it by its served name.
        settings = replace(settings, model=server.model)
    profile = replace(endpoint.profile, model=endpoint.profile.model or server.model,
                      family=endpoint.profile.family or server.family,
                      quirks=replace(endpoint.profile.quirks, frame_limit=server.frame_limit,
                                     media_io_kwargs=server.request_mm_kwargs, media_uuid=True,
                                     video_item_tokens=server.video_item_tokens))
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


def without_media_uuids(target: Target) -> Target:
    """`target` with media uuids off: for requests written to a file, which some other runner sends later."""
    endpoint = target.settings.endpoint
    profile = replace(endpoint.profile, quirks=replace(endpoint.profile.quirks, media_uuid=False))
    return replace(target, settings=replace(target.settings, endpoint=replace(endpoint, profile=profile)))


def connect(settings: "Settings", out: "Events", *, dry_run: bool,
            environ: Optional[Mapping[str, str]] = None) -> Target:
    """Start the local server if it is missing (not for a dry run), then learn the model, its family and
    its context length (from the probe cache, or GET /models; a dry run only reads the cache)."""
    environ = os.environ if environ is None else environ
    if not dry_run:
        from ..server.launch import ensure_local_server

        ensure_local_server(settings, out, environ)
    settings = attach_server(settings, environ)
    model, root, max_len = settings.model, None, None
    entry = _served(settings, model, out, environ, ask=not dry_run)
    if entry is not None:
        model, root, max_len = entry["id"], entry.get("root"), entry.get("max_model_len")
    family, source = judge_family(settings, model, root)
    return Target(settings, model, family, source, max_len, family_notes(family, source, model, root))


def _served(settings: "Settings", model: Optional[str], out: "Events", environ: Mapping[str, str],
            ask: bool) -> Optional[dict]:
    """The named model's entry in what the endpoint serves (the first one when none is named), or None.

    A fresh probe from the cache costs nothing. Without one the endpoint is asked, unless this is a dry
    run or the model and its family are known (by flag, or the id names the family): then only the
    context length is left to learn, and the Runner asks for it just before the first request is sent,
    once the media are known to be good (`context_limit`)."""
    from . import probe as probes
    from ..errors import MmcliError, RequestRejected

    found = probes.cached(settings.endpoint.base_url, environ)
    named = settings.family or (model is not None and family_for_model(model).name != "generic")
    if found is None and ask and (model is None or not named):
        with out.spinner("asking the endpoint which model it serves"):
            if model is None:
                found = probes.probe(settings.endpoint, environ)
            else:
                try:  # only to learn the family and context length: an endpoint without /models is fine
                    found = probes.probe(settings.endpoint, environ)
                except MmcliError:
                    return None
    if found is None:
        return None
    if model is None and not found.models:
        raise RequestRejected("the endpoint serves no models", where=masked_url(settings.endpoint.base_url),
                              hint="pass --model NAME")
    return found.entry(model)


# Context lengths learnt in this process, by (base URL, model): many jobs, one question each.
_LIMITS: dict[tuple[str, Optional[str]], Optional[int]] = {}


def context_limit(target: Target, environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """The model's max_model_len: known from the endpoint step, else asked once (GET /models, also kept
    on disk a short while); None when the endpoint does not say or cannot list its models."""
    if target.max_model_len is not None:
        return target.max_model_len
    key = (target.settings.endpoint.base_url, target.model)
    if key not in _LIMITS:
        _LIMITS[key] = _asked_limit(target, os.environ if environ is None else environ)
    return _LIMITS[key]


def _asked_limit(target: Target, environ: Mapping[str, str]) -> Optional[int]:
    from . import probe as probes
    from ..errors import MmcliError

    try:
        found = probes.probe(target.settings.endpoint, environ)
    except MmcliError:
        return None
    entry = found.entry(target.model)
    return entry.get("max_model_len") if entry else None


def family_notes(family: Family, source: str, model: Optional[str], root: Optional[str]) -> tuple[str, ...]:
    """The plan's note when nothing told the family and mmcli stays generic."""
    if family.name != "generic" or source != "default":
        return ()
    named = [f"the model id {model!r}" if model else "no model id",
             f"its root {root!r}" if root else "no root from the endpoint"]
    return (f"family generic: {' and '.join(named)} name no known family "
            f"({', '.join(f for f in FAMILIES if f != 'generic')}), so images keep a longest side of "
            f"{family.longest_side} px and their token cost is unknown; pass --family if the model is one of them",)


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


@dataclass(frozen=True)
class ServedModel:
    """One model an endpoint serves, and the family mmcli would use for it and why."""

    id: str
    root: Optional[str]
    max_model_len: Optional[int]
    family: str
    family_source: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"id": self.id, "root": self.root, "family": self.family, "family_source": self.family_source,
                "max_model_len": self.max_model_len}


def served_models(settings: "Settings", out: "Events", environ: Optional[Mapping[str, str]] = None):
    """(settings aimed at the server, its probe asked afresh with the vLLM version, each model described)."""
    from . import probe as probes

    environ = os.environ if environ is None else environ
    settings = attach_server(settings, environ)
    with out.spinner("asking the endpoint what it serves"):
        found = probes.probe(settings.endpoint, environ, want_version=True, refresh=True)
    rows = []
    for entry in found.models:
        family, source = judge_family(settings, entry["id"], entry.get("root"))
        rows.append(ServedModel(entry["id"], entry.get("root"), entry.get("max_model_len"), family.name, source))
    return settings, found, rows


def target_for(settings: "Settings", row: ServedModel) -> Target:
    """The target of one served model (what `mmcli models --check` sends to)."""
    family = FAMILIES[row.family]
    return Target(settings, row.id, family, row.family_source, row.max_model_len,
                  family_notes(family, row.family_source, row.id, row.root))
