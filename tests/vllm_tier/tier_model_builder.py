"""Write tiny random-weight Qwen VL model folders that vLLM can serve.

Run by the tier venv's python (it needs torch and transformers):

    python tier_model_builder.py FAMILY OUT_DIR [FAMILY OUT_DIR ...]

FAMILY is a key of ``tier_model_families.RECIPES`` (qwen2-vl, qwen2.5-vl, qwen3-vl).
Deterministic: fixed seed, a tokenizer trained on text that ships with the
interpreter, and fixed configs.  Each folder holds config.json, the weights,
a byte-level BPE tokenizer with Qwen's special tokens, the Qwen2-VL chat
template (Qwen3-VL's frame timestamps are written by vLLM's processor, not
the template), and the image, video and generation configs.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

from tier_model_families import RECIPES, VOCAB_SIZE, Recipe

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
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


def train_tokenizer(special_tokens: list[str] = SPECIAL_TOKENS):
    """Byte-level BPE of VOCAB_SIZE tokens; the special tokens get the first ids, in order."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


def make_tokenizer(tok):
    """The fast tokenizer every family shares, with the Qwen2-VL chat template."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, model_max_length=32768, clean_up_tokenization_spaces=False,
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def self_check(out: Path, ids: dict[str, int], recipe: Recipe) -> None:
    """Reload the folder as vLLM would and check token ids, the +2 rule, the grid and a forward pass."""
    import torch
    import transformers
    from PIL import Image
    from transformers import AutoConfig, AutoProcessor

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
    grid = tuple(inputs["image_grid_thw"][0].tolist())
    assert grid == recipe.grid_640x480, (recipe.family, grid)
    model_class = getattr(transformers, recipe.model_class)
    model = model_class.from_pretrained(out, dtype=torch.bfloat16)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == VOCAB_SIZE and torch.isfinite(logits.float()).all()


def build(recipe: Recipe, tok, out: Path) -> None:
    """Write one family's whole model folder into ``out``."""
    import torch
    import transformers
    from transformers import GenerationConfig

    torch.manual_seed(0)
    ids = {token: tok.token_to_id(token) for token in SPECIAL_TOKENS}
    model_class = getattr(transformers, recipe.model_class)
    model = model_class(recipe.make_config(ids)).to(torch.bfloat16).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                     eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]]).save_pretrained(out)
    processor = recipe.make_processor(make_tokenizer(tok), CHAT_TEMPLATE)
    processor.save_pretrained(out)
    processor.image_processor.save_pretrained(out)  # preprocessor_config.json
    processor.video_processor.save_pretrained(out)  # video_preprocessor_config.json
    processor.tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    self_check(out, ids, recipe)
    print(f"tiny {recipe.label} written to {out}: {n_params} parameters, ids {ids}", flush=True)


def main(argv: list[str]) -> None:
    """Build each FAMILY OUT_DIR pair, training the shared tokenizer once."""
    if not argv or len(argv) % 2:
        sys.exit("usage: python tier_model_builder.py FAMILY OUT_DIR [FAMILY OUT_DIR ...]")
    pairs = list(zip(argv[::2], argv[1::2]))
    unknown = [family for family, _ in pairs if family not in RECIPES]
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {sorted(RECIPES)}")
    tok = train_tokenizer()
    assert len(tok.get_vocab()) == VOCAB_SIZE, len(tok.get_vocab())
    for family, out in pairs:
        build(RECIPES[family], tok, Path(out))


if __name__ == "__main__":
    main(sys.argv[1:])
