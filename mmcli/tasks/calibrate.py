"""`mmcli models --check`: one synthetic image and the same question without it, sent to the server,
so its count of the image's visual tokens can be compared with the plan."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Optional

from ..families import FAMILIES, QWEN2_FACTOR, QWEN3_FACTOR, Family

if TYPE_CHECKING:
    from ..settings import MediaOptions
    from ..core.endpoint import Target
    from ..events import Events

# Wide enough that the client's default budget (1280 tokens) caps it: a server capping lower shows.
CHECK_WIDTH, CHECK_HEIGHT = 1600, 1200
PROMPT = "Describe this."
# What a Qwen-VL server allows by default (its processor's max_pixels), in tokens of its grid.
SERVER_DEFAULT_TOKENS = 16384


@dataclass
class Calibration:
    """What the check sent and what the server counted."""

    model: Optional[str]
    family: str
    original: list[int]  # width, height of the synthetic image
    sent: list[Optional[int]]
    planned: Optional[int]
    image_prompt_tokens: Optional[int]
    text_prompt_tokens: Optional[int]
    tokenized_text: Optional[int]  # vLLM's /tokenize of the text-only request
    markers: Optional[int]
    counted: Optional[int]  # the server's visual tokens for the image
    matches: Optional[bool]
    finding: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def synthetic_image():
    """A gradient picture made in memory (no file, no randomness)."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((CHECK_WIDTH, CHECK_HEIGHT))
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient))


def calibrate(target: "Target", media: "MediaOptions", events: "Events", vllm: bool) -> Calibration:
    """Send the image request and the text-only one; compare the server's count for the image with the plan."""
    from ..settings import GenerationOptions
    from ..errors import MmcliError, RunStopped
    from ..core.inputs import read_inputs
    from ..core.runner import Runner
    from .ask import ask_job
    from .common import Context
    from ..core.verify import vision_markers

    endpoint = target.settings.endpoint
    checked = read_inputs([synthetic_image()], media, endpoint.timeout, events.warn, ("image",))
    ctx = Context(target, media, GenerationOptions(max_tokens=1, temperature=0.0, stream=False), events)
    runner = Runner(target, status=events.status, warn=events.warn)
    image_job, text_job = ask_job(checked, PROMPT, ctx), ask_job([], PROMPT, ctx)
    try:
        with_image, without = runner.run(image_job), runner.run(text_job)
    except RunStopped as stopped:
        raise stopped.cause from None
    tokenized = None
    if vllm:
        try:
            tokenized = runner.text_tokens(without)
        except MmcliError as exc:
            events.warn(f"cannot count the text exactly: {exc.message()}")
    [item] = image_job.items
    markers = vision_markers(item, target.family)
    image_tokens, text_tokens = with_image.usage.get("prompt_tokens"), without.usage.get("prompt_tokens")
    text = tokenized if tokenized is not None else text_tokens
    counted = None
    if isinstance(image_tokens, int) and isinstance(text, int):
        counted = image_tokens - text - (markers if markers is not None else 2)
    planned = item.visual_tokens
    matches = None if counted is None or planned is None else counted == planned
    return Calibration(target.model, target.family.name, [CHECK_WIDTH, CHECK_HEIGHT],
                       [item.sent_width, item.sent_height], planned, image_tokens, text_tokens, tokenized,
                       markers, counted, matches, finding(target.family, item, counted, media))


def finding(family: Family, item, counted: Optional[int], media: "MediaOptions") -> str:
    """One sentence: the count matches, or which setting differs between the server and the plan."""
    planned = item.visual_tokens
    if counted is None:
        return "the server reported no prompt token counts, so nothing can be compared"
    if counted <= 0:
        return ("the prompt with the image was no longer than without it (beyond the vision markers): "
                "the server seems to ignore images")
    if planned is not None and counted == planned:
        return f"the server counted the {planned:,} visual tokens planned: server and plan agree"
    grid = _grid_family(item, counted)
    if planned is None:
        if grid:
            return (f"the server counts this image like a {_label(grid)} model ({counted:,} tokens); "
                    f"pass --family {grid}")
        return (f"the server counted {counted:,} tokens for the image; mmcli cannot plan a generic model's tokens "
                "(pass --family if it is a Qwen-VL)")
    if grid and grid != family.name and FAMILIES[grid].factor != family.factor:
        return (f"the server counted {counted:,} visual tokens, the plan {planned:,}: its grid is that of {_label(grid)} "
                f"(factor {FAMILIES[grid].factor}), not {family.name}; pass --family {grid}")
    factor = family.factor or QWEN2_FACTOR
    if counted < planned:
        client_max = media.max_pixels or (media.max_tokens_per_image or 0) * factor * factor or family.max_pixels
        return (f"the server counted {counted:,} visual tokens, fewer than the {planned:,} planned: its max_pixels "
                f"is below the client's ({client_max:,}); pass --max-tokens-per-image {counted} "
                f"(--max-pixels {counted * factor * factor}) or raise the server's max_pixels")
    return (f"the server counted {counted:,} visual tokens, more than the {planned:,} planned: its min_pixels "
            "is above the client's, or its grid differs; check --family")


def _grid_family(item, counted: int) -> Optional[str]:
    """The family whose default server resize of the sent image gives `counted` tokens, if one does."""
    from ..media.resize import smart_resize

    if not item.sent_width or not item.sent_height:
        return None
    for name, factor in (("qwen2.5-vl", QWEN2_FACTOR), ("qwen3-vl", QWEN3_FACTOR)):
        height, width = smart_resize(item.sent_height, item.sent_width, factor, 4 * factor * factor,
                                     SERVER_DEFAULT_TOKENS * factor * factor)
        if (height // factor) * (width // factor) == counted:
            return name
    return None


def _label(name: str) -> str:
    # Qwen2-VL and Qwen2.5-VL share the 28 px grid: the count cannot tell them apart.
    return "qwen2-vl or qwen2.5-vl" if name == "qwen2.5-vl" else name
