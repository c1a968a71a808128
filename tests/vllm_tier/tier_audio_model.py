"""Write a tiny random-weight Qwen2-Audio model folder that vLLM can serve.

Run by the tier venv's python (it needs torch and transformers):

    python tier_audio_model.py OUT_DIR

The same recipe as the tiny Qwen VL models (tier_model_builder.py): a byte-level BPE trained on
standard-library docstrings, here with Qwen2-Audio's special tokens; a 2-layer, 64-wide Whisper-style
encoder on 128 mel bins (30 s window, conv stride 2, pooling 2) feeding a 2-layer, 128-wide Qwen2;
a WhisperFeatureExtractor at 16 kHz; a chat template that renders an audio part as exactly
``<|audio_bos|><|AUDIO|><|audio_eos|>``, so each part costs its audio tokens + 2 more.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tier_model_builder import SPECIAL_TOKENS, train_tokenizer
from tier_model_families import VOCAB_SIZE

AUDIO_TOKENS = ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]
TOKENS = SPECIAL_TOKENS + AUDIO_TOKENS
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content "
    "or 'input_audio' in content %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def config(ids: dict[str, int]):
    """Qwen2-Audio: a 2-layer Whisper-style encoder, 64 wide, and a 2-layer 128-wide Qwen2."""
    from transformers import Qwen2AudioConfig

    audio = dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128,
                 d_model=64, max_source_positions=1500)
    text = dict(vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32768,
                rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], dtype="bfloat16")
    return Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=ids["<|AUDIO|>"],
                            dtype="bfloat16")


def processor(tok):
    """Tokenizer, 128-bin WhisperFeatureExtractor (16 kHz, 30 s) and the template, as one processor."""
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        model_max_length=32768, clean_up_tokenization_spaces=False,
        extra_special_tokens=[t for t in TOKENS if t not in ("<|im_end|>", "<|endoftext|>")])
    tokenizer.chat_template = CHAT_TEMPLATE
    features = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30,
                                       n_fft=400, padding_value=0.0, return_attention_mask=True)
    return Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def self_check(out: Path, ids: dict[str, int]) -> None:
    """Reload as vLLM would: the audio token id, 125 tokens for 5 s, 750 for 30 s, a forward pass."""
    import numpy as np
    import torch
    from transformers import (
        AutoConfig,
        AutoProcessor,
        Qwen2AudioForConditionalGeneration,
    )

    cfg = AutoConfig.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    assert proc.tokenizer.convert_tokens_to_ids("<|AUDIO|>") == cfg.audio_token_index == ids["<|AUDIO|>"]
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "What is it?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True)
    assert text.count("<|audio_bos|><|AUDIO|><|audio_eos|>") == 1, text
    for seconds, tokens in ((5, 125), (30, 750)):
        inputs = proc(text=[text], audio=[np.zeros(16000 * seconds, np.float32)], sampling_rate=16000,
                      return_tensors="pt")
        count = int((inputs["input_ids"] == ids["<|AUDIO|>"]).sum())
        assert count == tokens, (seconds, count)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(out, dtype=torch.bfloat16)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == VOCAB_SIZE and torch.isfinite(logits.float()).all()


def released_layout(out: Path) -> None:
    """Rename the weights to the released checkpoints' layout (language_model.model.layers.*), which
    vLLM loads; this transformers version saves the text model one `model.` deeper."""
    from safetensors.torch import load_file, save_file

    for shard in out.glob("*.safetensors"):
        tensors = load_file(shard)
        renamed = {key.replace("language_model.model.model.", "language_model.model."): value
                   for key, value in tensors.items()}
        save_file(renamed, shard, metadata={"format": "pt"})


def build(out: Path) -> None:
    """Write the whole model folder into ``out``."""
    import torch
    from transformers import GenerationConfig, Qwen2AudioForConditionalGeneration

    torch.manual_seed(0)
    tok = train_tokenizer(TOKENS)
    assert len(tok.get_vocab()) == VOCAB_SIZE, len(tok.get_vocab())
    ids = {token: tok.token_to_id(token) for token in TOKENS}
    model = Qwen2AudioForConditionalGeneration(config(ids)).to(torch.bfloat16).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    released_layout(out)
    GenerationConfig(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                     eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]]).save_pretrained(out)
    proc = processor(tok)
    proc.save_pretrained(out)
    proc.feature_extractor.save_pretrained(out)  # preprocessor_config.json
    proc.tokenizer.save_pretrained(out)
    self_check(out, ids)
    print(f"tiny Qwen2-Audio written to {out}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"ids {ids}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tier_audio_model.py OUT_DIR")
    build(Path(sys.argv[1]))
