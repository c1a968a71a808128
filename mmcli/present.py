"""How the CLI shows one streamed answer and its JSON, and how it reports a check against the plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .runner import RunStopped

if TYPE_CHECKING:
    from .job import Job
    from .render import Output
    from .runner import Result, Runner


def stream_answer(runner: "Runner", job: "Job", out: "Output", extra: Optional[dict] = None) -> "Result":
    """Send `job`, showing the answer as it arrives; with --json, one object at the end (also on failure)."""
    stop_spinner = out.start_spinner("waiting for the model")
    sinks: list = []  # created at the first piece of text, once the spinner is gone
    structured = job.generation.schema is not None  # shown whole once checked, not as it streams

    def on_text(delta: str) -> None:
        if structured:
            return
        if not sinks:
            stop_spinner()
            sinks.append(out.answer_sink())
        sinks[0].write(delta)

    def finish() -> None:
        stop_spinner()
        if sinks:
            sinks.pop().close()

    try:
        result = runner.run(job, on_text)
    except RunStopped as stopped:
        finish()
        partial = stopped.results[-1]
        if out.json_mode:
            out.emit_json(result_json(partial, extra=extra))
        elif structured and partial.text:  # the answer that failed its schema is kept
            out.line(partial.text)
        raise stopped.cause from None
    finally:
        finish()
    check_result(result, out)
    if out.json_mode:
        out.emit_json(result_json(result, extra=extra))
    elif structured:
        out.emit_value(result.value)
    return result


def check_result(result: "Result", out: "Output") -> None:
    """Warn when the answer was cut at the token limit or the server counted less than was planned."""
    from .tasks.common import result_warnings

    for warning in result_warnings(result):
        out.warn(warning)


def result_json(result: "Result", extra: Optional[dict] = None) -> dict:
    """The --json object: answer, model, finish reason, usage, the check against the plan, and the plan."""
    payload = {"answer": result.answer, "model": result.model or result.job.model,
               "finish_reason": result.finish_reason, "usage": result.usage,
               "planned_visual_tokens": result.planned_visual_tokens,
               "prompt_tokens": result.usage.get("prompt_tokens"), "verified": result.verified,
               **({"server_visual_tokens": result.server_visual_tokens}
                  if result.server_visual_tokens is not None else {}),
               "plan": result.plan.to_dict(), **(extra or {})}
    if result.error is not None:
        payload["error"] = result.error.message()
    elif result.interrupted:
        payload["error"] = "interrupted"
    return payload
