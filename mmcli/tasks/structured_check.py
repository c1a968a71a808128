"""`mmcli models --check`: whether the endpoint constrains its answers to a JSON Schema."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.endpoint import Target
    from ..events import Events

PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                "additionalProperties": False}
PROMPT = "Answer with ok true."


def check_structured(target: "Target", events: "Events") -> dict:
    """One tiny text-only request under a schema: {"works": True/False/None, "finding": one sentence}."""
    from ..settings import GenerationOptions, MediaOptions
    from ..errors import OutputUnparseable, RequestRejected, RunStopped
    from ..core.runner import Runner
    from ..schema import Schema
    from .common import Context

    mode = target.settings.endpoint.quirks.structured_output
    if mode == "none":
        return {"works": None, "finding": "the profile says this endpoint has no structured output "
                "(structured_output = \"none\"): --schema goes in the prompt and is checked here"}
    generation = GenerationOptions(max_tokens=20, temperature=0.0, stream=False, schema=Schema(PROBE_SCHEMA, "check"))
    ctx = Context(target, MediaOptions(), generation, events)
    try:
        Runner(target, status=events.status).run(ctx.job([], PROMPT, label="structured output check"))
    except RunStopped as stopped:
        cause = stopped.cause
        if isinstance(cause, RequestRejected):
            return {"works": False, "finding": f"the endpoint refused a JSON Schema request: {cause.why or cause.what}"}
        if isinstance(cause, OutputUnparseable):
            return {"works": False, "finding": "the endpoint took the schema but did not keep to it "
                    f"({cause.why}); set structured_output = \"none\" in its profile"}
        raise cause from None
    return {"works": True, "finding": f"the endpoint keeps its answers to a JSON Schema ({mode})"}
