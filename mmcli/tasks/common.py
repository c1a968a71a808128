"""What every task shares: the target, the options, and where it reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..core.flow import Context, check_text  # noqa: F401  (defined with the steps that make them; tasks take them here)

if TYPE_CHECKING:
    from ..core.runner import Result


def total_usage(usages: list[dict]) -> dict:
    """Token counts summed over several requests."""
    total: dict = {}
    for usage in usages:
        for key, value in usage.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    return total


def add_warnings(warnings: list[str], result: "Result") -> None:
    """Add what the user should know about `result` to `warnings`, each once."""
    for warning in result_warnings(result):
        if warning not in warnings:
            warnings.append(warning)


def check_result(result: "Result", events) -> None:
    """Tell `events` when the answer was cut at the token limit or the server counted less than was planned."""
    for warning in result_warnings(result):
        events.warn(warning)


def check_fields(planned: Optional[int], usage: dict, verified: Optional[bool],
                 server_visual_tokens: Optional[int] = None) -> dict:
    """The fields of the check against the plan, the same for every task."""
    data = {"planned_visual_tokens": planned, "prompt_tokens": usage.get("prompt_tokens"), "verified": verified}
    if server_visual_tokens is not None:
        data["server_visual_tokens"] = server_visual_tokens
    return data


def all_verified(results: list["Result"]) -> Optional[bool]:
    """Whether the server saw every planned request whole: None when any cannot be told."""
    checks = [r.verified for r in results]
    return None if None in checks or not checks else all(checks)


def result_warnings(result: "Result") -> list[str]:
    """What the user should know about one answer: cut at the token limit, or fewer tokens than planned."""
    found = []
    if result.finish_reason == "length":
        limit = result.job.generation.max_tokens
        name = f" for {result.job.label}" if result.job.named_warnings else ""
        if limit is None:  # no --max-tokens: the server let it run to the end of the context (or its default)
            found.append(f"the answer{name} ran to the end of the model's context (or the server's default "
                         "token limit); --max-tokens caps it")
        else:
            found.append(f"the answer{name} stopped at the token limit ({limit}); raise --max-tokens for a "
                         "longer answer")
    if result.verified is False:
        found.append(unverified_message(result))
    return found


def likely_cause(items: list) -> str:
    """What most likely made the server see less than was planned, judged by what the request held."""
    causes = []
    if any(item.kind == "video" and item.transport == "frames" for item in items):
        causes.append("the server keeps only part of a frame list (vLLM keeps 32 frames unless started with "
                      "--media-io-kwargs '{\"video\": {\"num_frames\": -1}}', as mmcli serve does)")
    if any(item.kind in ("image", "page") or (item.kind == "video" and item.transport == "images") for item in items):
        causes.append("the server shrank the images: its max_pixels is below the client's; pass a lower --max-pixels")
    if any(item.kind == "audio" for item in items):
        causes.append("the server cut or resampled the audio: its audio encoder counts differently from the "
                      "family's; check --family")
    return "; or ".join(causes) or "the server dropped media from the request"


def unverified_message(result: "Result") -> str:
    """Why the server's prompt is smaller than the plan, and what to do about it."""
    planned, prompt = result.planned_visual_tokens, result.usage.get("prompt_tokens")
    counted = result.server_visual_tokens
    if counted is not None and counted > planned:
        return (f"the server counted {counted:,} visual tokens, more than the {planned:,} planned (--verify): "
                "its grid or minimum size differs from the plan's; check --family")
    cause = likely_cause(result.job.items)
    if counted is not None:
        return (f"the server counted {counted:,} visual tokens, fewer than the {planned:,} planned (--verify): "
                f"media were dropped or shrunk; likely {cause}")
    return (f"the server counted {prompt:,} prompt tokens, fewer than the {planned:,} visual tokens planned: "
            f"media were dropped or shrunk; likely {cause}")
