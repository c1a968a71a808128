"""`mmcli doctor`'s look at the model a client command would start by itself: a folder on this disk, a model
in the local model-hub cache, or one only the hub has while the hub cannot be reached (offline, or nothing
answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

from ..errors import ExitCode, MmcliError

if TYPE_CHECKING:
    from .doctor import Check, Machine


def autostart_blocked(found: "Machine", where: str, timeout: float, environ: Mapping[str, str]) -> Optional["Check"]:
    """A failed check when the model auto-start would serve is neither on this disk nor reachable on the hub."""
    from .doctor import Check
    from ..hints import NO_HUB
    from ..server.command_line import ServeOptions
    from ..server.hub import hub_blocked
    from ..server.launch import model_choice, resolve_device

    try:
        opts = resolve_device(ServeOptions(model=found.settings.model or ""), found.vllm)
        model = model_choice(opts.model)
    except MmcliError:
        return None  # auto-start refuses this model itself, with its own message
    why = hub_blocked(model.source, model.local, environ, timeout)
    if why is None:
        return None
    return Check("endpoint", "fail", f"{where}: nothing answers, and auto-start cannot serve {opts.model} "
                 f"({model.source}): {why}",
                 NO_HUB + "; or pick another endpoint with --base-url / --profile", int(ExitCode.UNAVAILABLE))
