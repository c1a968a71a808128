"""A request against the server: does it fit the context before it is sent, and did the server count
exactly the visual tokens planned (--verify, with vLLM's /tokenize) after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Protocol

from ..errors import MmcliError, UsageError
from ..families import FAMILIES, Family

if TYPE_CHECKING:
    from ..settings import Endpoint
    from .job import Job
    from ..media.item import MediaItem
    from .plan import Plan

# Tokens kept for the answer when --max-tokens is not given: vLLM needs room for at least a few.
ANSWER_RESERVE = 16
# Qwen chat templates write <|vision_start|><|image_pad|><|vision_end|> (or <|video_pad|>) per item;
# the processor turns the pad into the grid tokens, so each item costs its grid tokens + 2.
QWEN_MARKERS = 2
# A low guess of text tokens per character: the fit check must never refuse what would fit.
CHARS_PER_TOKEN = 4
MEDIA_PARTS = ("image_url", "video_url", "input_audio", "audio_url")


def text_only(request: dict) -> dict:
    """The request's model and messages with every media part left out (the text the server sees)."""
    messages = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = [part for part in content if part.get("type") not in MEDIA_PARTS]
        messages.append({**message, "content": content})
    return {"model": request.get("model"), "messages": messages}


def vision_markers(item: "MediaItem", family: Family) -> Optional[int]:
    """Marker tokens the chat template adds around `item` besides its grid tokens; None: not known."""
    if family.factor is None:
        return None  # generic models: their templates and token counts are not known
    if item.kind == "video" and family.name == "qwen3-vl" and item.transport != "images":
        return None  # Qwen3-VL writes a timestamp and markers per frame pair, counted elsewhere
    if item.transport == "images":
        return QWEN_MARKERS * len(item.frames)
    return QWEN_MARKERS


class Answered(Protocol):
    """What verification reads of a runner's Result (named here so this module needs no runner import)."""

    usage: dict
    job: "Job"
    plan: "Plan"

    @property
    def planned_visual_tokens(self) -> Optional[int]: ...


def server_visual_tokens(endpoint: "Endpoint", result: Answered,
                         warn: Optional[Callable[[str], None]] = None) -> Optional[int]:
    """The visual tokens the server counted: its prompt tokens minus the exact text tokens (POST
    /tokenize of the same messages without media) minus the vision markers; None when unknown."""
    prompt = result.usage.get("prompt_tokens")
    items = result.job.sent_items
    if result.planned_visual_tokens is None or not isinstance(prompt, int) or result.plan.items != items:
        return None
    markers = [vision_markers(item, result.job.family) for item in items]
    if any(m is None for m in markers):
        _say(warn, f"--verify cannot count the {result.job.family.name} prompt's markers exactly; "
                   "only the prompt-size check was made")
        return None
    try:
        text = text_tokens(endpoint, result.plan.request)
    except MmcliError as exc:
        _say(warn, f"--verify: {exc.message()}; only the prompt-size check was made")
        return None
    return prompt - text - sum(markers)


def text_tokens(endpoint: "Endpoint", request: dict) -> int:
    """The exact tokens of the request's text alone: vLLM's POST /tokenize of it without its media."""
    from ..net import vllm_routes

    return vllm_routes.tokenize(endpoint, text_only(request))


def _say(warn: Optional[Callable[[str], None]], message: str) -> None:
    if warn is not None:
        warn(message)


def text_estimate(plan: "Plan") -> int:
    """A low estimate of the request's non-visual tokens: its text, plus the markers of each item."""
    chars = 0
    for message in plan.request.get("messages", []):
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        chars += sum(len(part.get("text") or "") for part in parts if part.get("type") == "text")
    return chars // CHARS_PER_TOKEN + QWEN_MARKERS * len(plan.items)


def check_fits(plan: "Plan", max_model_len: Optional[int], max_tokens: Optional[int]) -> None:
    """Refuse (exit 2) a request whose planned tokens cannot fit the model's context, naming what would fit."""
    visual = plan.visual_tokens
    if not max_model_len or visual is None:
        return
    text = text_estimate(plan)
    reserve = max_tokens if max_tokens is not None else ANSWER_RESERVE
    need = visual + text + reserve
    if need <= max_model_len:
        return
    answer = "--max-tokens" if max_tokens is not None else "kept for the answer"
    raise UsageError("the request does not fit the model's context", where=plan.model or "",
                     why=f"{visual:,} visual tokens + about {text:,} of text + {reserve:,} {answer} = "
                         f"{need:,}, over max_model_len {max_model_len:,}",
                     hint=budget_hint(plan, max_model_len - text - reserve))


def budget_hint(plan: "Plan", room: int) -> str:
    """The budget that would fit `room` visual tokens: per image, or the video's pixel budget. The media of
    earlier turns are resent as they were: no option shrinks them."""
    earlier = plan.items[:plan.resent]
    fixed = sum(item.visual_tokens or 0 for item in earlier)
    if fixed:
        new = _new_budget_hint(plan, room - fixed, plan.items[plan.resent:]) if room - fixed >= 4 else ""
        return (f"the earlier turns resend {fixed:,} visual tokens as they were sent, which no option shrinks: "
                "start a new conversation (leave out -c/--cid)" + (f", or {new}" if new else ""))
    return _new_budget_hint(plan, room, plan.items)


def _new_budget_hint(plan: "Plan", room: int, items: list) -> str:
    family = FAMILIES.get(plan.family, FAMILIES["generic"])
    if room < 4:
        return "the text and the answer alone fill the context: lower --max-tokens or shorten the prompt"
    if not items:
        return ""
    videos = [item for item in items if item.kind == "video"]
    images = [item for item in items if item.kind != "video"]
    factor = family.factor or 1
    if videos:
        share = room - sum(item.visual_tokens or 0 for item in images)
        if share < 4:
            return f"at most {room:,} visual tokens fit: send fewer images beside the video"
        return (f"at most {share:,} visual tokens fit the video: lower --total-pixels to about "
                f"{share * 2 * factor * factor:,} or send fewer frames (--fps, --max-frames)")
    per_image = room // len(images)
    if per_image < 4:
        return f"at most {room:,} visual tokens fit: send fewer images or pages per request"
    return (f"at most {per_image:,} visual tokens per image fit: pass --max-tokens-per-image {per_image} "
            f"(--max-pixels {per_image * factor * factor})")
