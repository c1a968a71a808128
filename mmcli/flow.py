"""The order every command follows: settings, inputs, endpoint, then media and sending."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .config import CommonOptions
    from .events import Events
    from .inputs import CheckedInput
    from .runner import Runner
    from .tasks.common import Context


@dataclass
class Started:
    """A command ready to build its jobs: its checked inputs, its context and its runner."""

    checked: list["CheckedInput"]
    ctx: "Context"
    runner: "Runner"


def start(inputs: list, opts: "CommonOptions", events: "Events", allowed: tuple[str, ...],
          environ: Optional[dict] = None) -> Started:
    """Resolve settings, open and check every input, then find the endpoint: in that order."""
    from .config import resolve_settings
    from .endpoint import connect
    from .inputs import check_inputs
    from .runner import Runner
    from .tasks.common import Context

    settings = resolve_settings(opts.endpoint, environ)
    checked = check_inputs(inputs, opts.media, settings.endpoint.timeout, events.warn, allowed)
    target = connect(settings, events, dry_run=opts.output.dry_run, environ=environ)
    ctx = Context(target, opts.media, opts.generation, events)
    return Started(checked, ctx, Runner(target, status=events.status))
