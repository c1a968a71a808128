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

    def on_text(delta: str) -> None:
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
        raise stopped.cause from None
    finally:
        finish()
    check_result(result, out)
    if out.json_mode:
        out.emit_json(result_json(result, extra=extra))
    return result


def check_result(result: "Result", out: "Output") -> None:
    """Warn when the answer was cut at the token limit or the server counted less than was planned."""
    if result.finish_reason == "length":
        limit = result.job.generation.max_tokens or "server default"
        name = f" for {result.job.label}" if result.job.context.get("name_in_warnings") else ""
        out.warn(f"the answer{name} stopped at the token limit ({limit}); raise --max-tokens for a longer answer")
    if result.verified is False:
        out.warn(unverified_message(result))


def unverified_message(result: "Result") -> str:
    """Why the server's prompt is smaller than the plan, and what to do about it."""
    planned, prompt = result.planned_visual_tokens, result.usage.get("prompt_tokens")
    video = any(item.kind == "video" for item in result.job.items)
    counted = result.server_visual_tokens
    if counted is not None and counted > planned:
        return (f"the server counted {counted:,} visual tokens, more than the {planned:,} planned (--verify): "
                "its grid or minimum size differs from the plan's; check --family")
    cause = ("the server keeps only part of a frame list (vLLM keeps 32 frames unless started with "
             "--media-io-kwargs '{\"video\": {\"num_frames\": -1}}', as mmcli serve does)" if video else
             "the server shrank the images: its max_pixels is below the client's; pass a lower --max-pixels")
    if counted is not None:
        return (f"the server counted {counted:,} visual tokens, fewer than the {planned:,} planned (--verify): "
                f"media were dropped or shrunk; likely {cause}")
    return (f"the server counted {prompt:,} prompt tokens, fewer than the {planned:,} visual tokens planned: "
            f"media were dropped or shrunk; likely {cause}")


def result_json(result: "Result", extra: Optional[dict] = None) -> dict:
    """The --json object: answer, model, finish reason, usage, the check against the plan, and the plan."""
    payload = {"answer": result.text, "model": result.model or result.job.model,
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
