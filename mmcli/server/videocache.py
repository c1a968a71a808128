"""How many visual tokens one video may take on a server `mmcli serve` starts (pure functions).

vLLM refuses a media item with more embeddings than its encoder cache holds ("exceeds the pre-allocated
encoder cache size"). On vLLM 0.32 that cache is the larger of --max-num-batched-tokens and what the
model's processor says its largest item is; for Qwen-VL the latter is a 14-frame video at the server's
image size (8,960 tokens for a 1280-token image budget), far below the client's default video (a 64-frame
clip costs 18,144). The dummy video sizes of --limit-mm-per-prompt (num_frames, width, height) only ever
shrink the profiling input on 0.32, so they cannot raise it. mmcli serve therefore sets
--max-num-batched-tokens to the largest video the client plans for, bounded by the context (no item can be
longer than the prompt), records that limit, and clients plan their videos within it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..families import Family

BATCHED_TOKENS_FLAG = "--max-num-batched-tokens"
# The context assumed when neither --max-model-len nor the alias says (a video item cannot be longer).
DEFAULT_CONTEXT = 32768


def client_video_tokens(family: "Family") -> Optional[int]:
    """The most visual tokens the client's default budget gives one video: frame pairs share a grid, and
    each frame gets at most 2/count of the total pixel budget, so the whole video at most total/factor^2."""
    if family.factor is None or not family.video_total_pixels:
        return None
    return family.video_total_pixels // (family.factor * family.factor)


def given_batched_tokens(extra_args: tuple[str, ...]) -> Optional[int]:
    """The user's own --max-num-batched-tokens after `--`, if any (and a number)."""
    for n, arg in enumerate(extra_args):
        name, _, value = arg.partition("=")
        if name.replace("_", "-") != BATCHED_TOKENS_FLAG:
            continue
        value = value or (extra_args[n + 1] if n + 1 < len(extra_args) else "")
        return int(value) if value.isdigit() else None
    return None


def video_item_tokens(family: "Family", max_model_len: Optional[int], extra_args: tuple[str, ...]
                      ) -> tuple[Optional[int], list[str]]:
    """(the per-video token limit to record, the vLLM flags that make the server take it)."""
    own = given_batched_tokens(extra_args)
    if own is not None:
        return own, []  # the user sized the cache: record what they chose
    planned = client_video_tokens(family)
    if planned is None:
        return None, []
    limit = min(planned, max_model_len or DEFAULT_CONTEXT)
    return limit, [BATCHED_TOKENS_FLAG, str(limit)]
