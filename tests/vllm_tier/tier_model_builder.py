"""Write a tiny random-weight Qwen2-VL model folder that vLLM can serve.

Run by the tier venv's python (it needs torch and transformers):

    python tier_model_builder.py OUT_DIR

Deterministic: fixed seed, a tokenizer trained on text that ships with the
interpreter, and fixed configs.  The folder holds config.json, the weights,
a byte-level BPE tokenizer with Qwen's special tokens, a Qwen2-VL chat
template, and the image, video and generation configs.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

FACTOR = 28  # 14 px patches merged 2x2
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
VOCAB_SIZE = 1000
PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                     r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS_MODULES = ("argparse", "collections", "functools", "itertools", "json", "logging",
                  "pathlib", "shutil", "string", "subprocess", "textwrap", "unittest")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content or 'video_url' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus() -> list[str]:
    """Docstrings of a fixed set of standard-library modules: local, stable text."""
    texts = []
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        texts.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            doc = inspect.getdoc(getattr(module, attr)) if not attr.startswith("_") else None
            if doc:
                texts.append(doc)
    return texts


def train_tokenizer():
    """Byte-level BPE of VOCAB_SIZE tokens; the special tokens get ids 0..13."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


def make_config(ids: dict[str, int]):
    """Qwen2-VL config: text 128 wide, 2 layers, head dim 64; vision 64 wide, depth 2."""
    from transformers import Qwen2VLConfig

    text = dict(vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                 "mrope_section": [8, 12, 12]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"], dtype="bfloat16")
    vision = dict(depth=2, embed_dim=64, hidden_size=128, num_heads=1, mlp_ratio=4,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return Qwen2VLConfig(text_config=text, vision_config=vision,
                         image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                         vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"],
                         tie_word_embeddings=False, dtype="bfloat16")


def make_processor(tok):
    """Qwen2-VL processor with the tokenizer, image/video processors and chat template."""
    from transformers import (PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor,
                              Qwen2VLVideoProcessor)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, model_max_length=32768, clean_up_tokenization_spaces=False,
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")])
    tokenizer.chat_template = CHAT_TEMPLATE
    image = Qwen2VLImageProcessor(min_pixels=4 * FACTOR**2, max_pixels=16384 * FACTOR**2,
                                  patch_size=14, temporal_patch_size=2, merge_size=2)
    video = Qwen2VLVideoProcessor(min_pixels=128 * FACTOR**2, max_pixels=768 * FACTOR**2,
                                  patch_size=14, temporal_patch_size=2, merge_size=2)
    return Qwen2VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                            chat_template=CHAT_TEMPLATE)


def self_check(out: Path, ids: dict[str, int]) -> None:
    """Reload the folder as vLLM would and check token ids, the +2 rule and one forward pass."""
    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoProcessor, Qwen2VLForConditionalGeneration

    config = AutoConfig.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    tokenizer = processor.tokenizer
    for name, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>")):
        got = tokenizer.convert_tokens_to_ids(token)
        assert got == getattr(config, name) == ids[token], (name, got)
    text = [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}]}]
    image = [{"role": "user", "content": [{"type": "image"}, *text[0]["content"]]}]
    plain = processor.apply_chat_template(text, add_generation_prompt=True)
    with_image = processor.apply_chat_template(image, add_generation_prompt=True)
    extra = len(tokenizer(with_image)["input_ids"]) - len(tokenizer(plain)["input_ids"])
    assert extra == 3, f"image markers add {extra} tokens, expected 3 (start, pad, end)"
    inputs = processor(text=[with_image], images=[Image.new("RGB", (640, 480), "gray")],
                       return_tensors="pt")
    grid = inputs["image_grid_thw"][0].tolist()
    assert grid == [1, 34, 46], grid  # 476x644 px -> 17x23 = 391 visual tokens
    model = Qwen2VLForConditionalGeneration.from_pretrained(out, dtype=torch.bfloat16)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == VOCAB_SIZE and torch.isfinite(logits.float()).all()


def build(out: Path) -> None:
    """Write the whole model folder into ``out``."""
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(0)
    tok = train_tokenizer()
    ids = {token: tok.token_to_id(token) for token in SPECIAL_TOKENS}
    assert len(tok.get_vocab()) == VOCAB_SIZE, len(tok.get_vocab())
    config = make_config(ids)
    model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                     eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]]).save_pretrained(out)
    processor = make_processor(tok)
    processor.save_pretrained(out)
    processor.image_processor.save_pretrained(out)  # preprocessor_config.json
    processor.video_processor.save_pretrained(out)  # video_preprocessor_config.json
    processor.tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    self_check(out, ids)
    print(f"tiny Qwen2-VL written to {out}: {n_params} parameters, ids {ids}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tier_model_builder.py OUT_DIR")
    build(Path(sys.argv[1]))
