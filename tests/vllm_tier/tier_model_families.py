"""Recipes of the tier's tiny random models: one config and processor per Qwen VL family.

Imported by ``tier_model_builder.py`` in the tier venv (it needs transformers).
Every text model is 128 wide, 2 layers, head dim 64; every vision tower 2 blocks, 64 wide.
The pixel bounds of the image and video processors are those of the real checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

VOCAB_SIZE = 1000


@dataclass(frozen=True)
class Recipe:
    """How to build, and what to expect of, one family's tiny model."""

    family: str  # mmcli's family name, and the served name's stem
    label: str  # for log lines
    model_class: str  # transformers class of the whole model
    factor: int  # pixels per visual token side: patch size * merge size
    grid_640x480: tuple[int, int, int]  # the image processor's grid for a 640x480 image
    make_config: Callable[[dict[str, int]], object]
    make_processor: Callable[[object, str], object]


def _text(ids: dict[str, int], mrope_section: list[int], rope_theta: float, **extra) -> dict:
    rope = {"rope_type": "default", "rope_theta": rope_theta, "mrope_section": mrope_section}
    rope.update(extra.pop("rope_extra", {}))
    return dict(vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
                rope_parameters=rope, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                dtype="bfloat16", **extra)


def _marker_ids(ids: dict[str, int]) -> dict:
    return dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                vision_start_token_id=ids["<|vision_start|>"],
                vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
                dtype="bfloat16")


def qwen2_vl_config(ids: dict[str, int]):
    """Qwen2-VL: 14 px patches; the vision tower is 64 wide and projects to 128."""
    from transformers import Qwen2VLConfig

    vision = dict(depth=2, embed_dim=64, hidden_size=128, num_heads=1, mlp_ratio=4,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return Qwen2VLConfig(text_config=_text(ids, [8, 12, 12], 1000000.0), vision_config=vision,
                         **_marker_ids(ids))


def qwen2_5_vl_config(ids: dict[str, int]):
    """Qwen2.5-VL: 14 px patches, windowed attention in block 0, full attention in block 1."""
    from transformers import Qwen2_5_VLConfig

    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=1,
                  out_hidden_size=128, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, in_channels=3, window_size=112,
                  fullatt_block_indexes=[1], tokens_per_second=2, hidden_act="silu")
    return Qwen2_5_VLConfig(text_config=_text(ids, [8, 12, 12], 1000000.0), vision_config=vision,
                            **_marker_ids(ids))


def qwen3_vl_config(ids: dict[str, int]):
    """Qwen3-VL: 16 px patches, interleaved M-RoPE, deepstack features from block 1."""
    from transformers import Qwen3VLConfig

    text = _text(ids, [12, 10, 10], 5000000.0, head_dim=64,
                 rope_extra={"mrope_interleaved": True})
    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=1,
                  out_hidden_size=128, patch_size=16, spatial_merge_size=2,
                  temporal_patch_size=2, in_channels=3, num_position_embeddings=2304,
                  deepstack_visual_indexes=[1], hidden_act="gelu_pytorch_tanh")
    return Qwen3VLConfig(text_config=text, vision_config=vision, **_marker_ids(ids))


def _qwen2_processors(factor: int, image_max_tokens: int):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image = Qwen2VLImageProcessor(min_pixels=4 * factor**2, max_pixels=image_max_tokens * factor**2,
                                  patch_size=14, temporal_patch_size=2, merge_size=2)
    video = Qwen2VLVideoProcessor(min_pixels=128 * factor**2, max_pixels=768 * factor**2,
                                  patch_size=14, temporal_patch_size=2, merge_size=2)
    return image, video


def qwen2_vl_processor(tokenizer, template: str):
    """Qwen2-VL processor: images 4..16384 tokens, video frames 128..768 tokens."""
    from transformers import Qwen2VLProcessor

    image, video = _qwen2_processors(28, 16384)
    return Qwen2VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                            chat_template=template)


def qwen2_5_vl_processor(tokenizer, template: str):
    """Qwen2.5-VL processor: the Qwen2-VL image and video processors, as the checkpoints ship."""
    from transformers import Qwen2_5_VLProcessor

    image, video = _qwen2_processors(28, 16384)
    return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                               chat_template=template)


def qwen3_vl_processor(tokenizer, template: str):
    """Qwen3-VL processor: images 64..16384 tokens of 32 px; a video's frames 4096..24M pixels."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    # The sizes of the released checkpoints' preprocessor configs; for video the longest edge
    # bounds all frames together (frames x height x width), not each frame.
    image = Qwen2VLImageProcessor(size={"shortest_edge": 65536, "longest_edge": 16777216},
                                  patch_size=16, temporal_patch_size=2, merge_size=2,
                                  image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video = Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 25165824},
                                  patch_size=16, temporal_patch_size=2, merge_size=2, fps=2,
                                  min_frames=4, max_frames=768,
                                  image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                            chat_template=template)


RECIPES: dict[str, Recipe] = {recipe.family: recipe for recipe in (
    # 640x480 -> 644x476 (factor 28) -> 46x34 patches; -> 640x480 (factor 32) -> 40x30 patches
    Recipe("qwen2-vl", "Qwen2-VL", "Qwen2VLForConditionalGeneration", 28, (1, 34, 46),
           qwen2_vl_config, qwen2_vl_processor),
    Recipe("qwen2.5-vl", "Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", 28, (1, 34, 46),
           qwen2_5_vl_config, qwen2_5_vl_processor),
    Recipe("qwen3-vl", "Qwen3-VL", "Qwen3VLForConditionalGeneration", 32, (1, 30, 40),
           qwen3_vl_config, qwen3_vl_processor),
)}
