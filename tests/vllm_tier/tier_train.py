"""Train a tiny Qwen2-VL on synthetic scenes and clips and mmcli's own requests (tier venv's python).

    python tier_train.py --spec SPEC.json --out DIR --minutes M --max-steps N --hash HEX [--stage 2 --init DIR]

SPEC.json (written by ``tier_trained.py``) holds each task's message content, answer template and
weight in each stage.  Stage 1 trains the tokenizer and the model from scratch on the image tasks;
stage 2 loads a stage-1 folder (fp16, back to fp32) and goes on with the video tasks mixed with the
image ones, so nothing is forgotten.  Every step draws new scenes; the learning rate warms up for 30
steps, then follows a cosine to 5% over the wall-time budget (the CPU is shared, so steps are not a
clock).  A held-out batch is scored under teacher forcing every few minutes; the best checkpoint is
written as fp16 with the hash, the chat template, the processors and a greedy generation config.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from string import Template

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tier_model_builder import CHAT_TEMPLATE, PRETOKENIZE_REGEX, SPECIAL_TOKENS  # noqa: E402
from tier_scenes import COLOURS, HELD_OUT_SEED, SIZE, clip, scene, sent_frames  # noqa: E402

TRAIN_SEED = 7
BATCH = 16
LR, WARMUP, FLOOR = 2e-3, 30, 0.05
STAGE_LR = {1: LR, 2: 1e-3}  # stage 2 starts from a trained model: a gentler peak
EVAL_EVERY_S = 600.0
EVAL_PER_TASK = 16
IGNORE = -100


def coordinates(box: tuple[int, int, int, int], space: str) -> dict[str, str]:
    """The box's corners as the family writes them: 0..1000 of the scene, or its pixels."""
    if space == "norm1000":
        return {k: str(round(v * 1000 / SIZE)) for k, v in zip(("x1", "y1", "x2", "y2"), box)}
    return {k: str(v) for k, v in zip(("x1", "y1", "x2", "y2"), box)}


def answer_text(task: dict, colour: str, box: tuple[int, int, int, int], space: str) -> str:
    """The answer of one task for one scene."""
    return Template(task["answer"]).substitute(colour=colour, **coordinates(box, space))


def train_tokenizer(spec: dict):
    """Byte-level BPE on the task texts (every digit its own token) with Qwen's special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    texts = []
    for task in spec["tasks"].values():
        if not task["weights"][0]:
            continue  # the tokenizer is stage 1's: stage 2 goes on with it
        texts += [part["text"] for part in task["content"] if part["type"] == "text"] * 20
        for colour in COLOURS:
            for value in range(0, SIZE + 1, 28):
                texts.append(answer_text(task, colour, (value, value, value, value), spec["space"]))
    texts += ["system\nYou are a helpful assistant.\nuser\nassistant\n"] * 20
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def make_model(vocab: int, ids: dict[str, int]):
    """LM 256 wide, 3 layers, 4 heads (2 KV); vision 2 blocks, 128 wide; rope theta 10."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text = dict(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
                rms_norm_eps=1e-6, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 10.0, "mrope_section": [4, 14, 14]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"], dtype="float32")
    vision = dict(depth=2, embed_dim=128, hidden_size=256, num_heads=4, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"],
                           vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
                           dtype="float32")
    return Qwen2VLForConditionalGeneration(config)


def jpeg(pixels: np.ndarray, quality: int):
    """The scene as the server gets it from mmcli: a JPEG at mmcli's quality, decoded."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


class Batches:
    """Training and held-out batches: scenes, chat-templated prompts, answers and label masks."""

    def __init__(self, spec: dict, processor, seed: int, stage: int = 1):
        self.spec, self.processor, self.tokenizer = spec, processor, processor.tokenizer
        self.rng = np.random.default_rng(seed)
        self.names = [n for n, task in spec["tasks"].items() if task["weights"][stage - 1]]
        self.folder = tempfile.TemporaryDirectory(prefix="tier-train-clips-")
        weights = np.array([spec["tasks"][n]["weights"][stage - 1] for n in self.names], dtype=float)
        self.weights = weights / weights.sum()
        self.prompts = {name: processor.apply_chat_template(
            [{"role": "user", "content": task["content"]}], add_generation_prompt=True)
            for name, task in spec["tasks"].items() if name in self.names}

    def sample(self, name: str | None = None):
        """One (task name, true box, encoded prompt, answer ids) drawn from this stream."""
        from PIL import Image

        name = name or str(self.rng.choice(self.names, p=self.weights))
        task, quality = self.spec["tasks"][name], self.spec["jpeg_quality"]
        if task.get("video"):  # the frames as mmcli sends a clip: mp4v decoded, JPEG frames
            drawn = clip(self.rng, self.spec["video"]["frames"])
            frames = [Image.open(io.BytesIO(data)).convert("RGB")
                      for data in sent_frames(drawn, self.folder.name, quality)]
            encoded = self.processor(text=[self.prompts[name]], videos=[frames], return_tensors="pt")
            colour, box = drawn.last
        else:
            drawn = scene(self.rng)
            encoded = self.processor(text=[self.prompts[name]], images=[jpeg(drawn.pixels, quality)],
                                     return_tensors="pt")
            colour, box = drawn.colour, drawn.box
        answer = answer_text(task, colour, box, self.spec["space"])
        answer_ids = self.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        return name, box, encoded, answer_ids

    def collate(self, samples):
        """Right-padded input ids, attention mask, labels on the answers, pixels and grids."""
        import torch

        rows = [enc["input_ids"][0].tolist() + ans for _, _, enc, ans in samples]
        width = max(map(len, rows))
        pad = self.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)  # marks image and video tokens (M-RoPE)
        for i, ((_, _, enc, ans), row) in enumerate(zip(samples, rows)):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
            prompt_types = enc["mm_token_type_ids"][0]
            types[i, :len(prompt_types)] = prompt_types
            labels[i, len(row) - len(ans):len(row)] = torch.tensor(ans)
        batch = dict(input_ids=ids, attention_mask=mask, labels=labels, mm_token_type_ids=types)
        for pixels, grid in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
            encodings = [enc for _, _, enc, _ in samples if pixels in enc]
            if encodings:
                batch[pixels] = torch.cat([enc[pixels] for enc in encodings])
                batch[grid] = torch.cat([enc[grid] for enc in encodings])
        return batch


def iou(a, b) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def read_box(text: str, space: str) -> list[float]:
    """The last four numbers of an answer as a box in scene pixels (all zero when there are fewer)."""
    numbers = [float(n) for n in re.findall(r"\d+", text)[-4:]]
    scale = SIZE / 1000 if space == "norm1000" else 1.0
    return [n * scale for n in numbers] if len(numbers) == 4 else [0.0, 0.0, 0.0, 0.0]


def evaluate(model, batches: Batches, held_out: list) -> dict:
    """Teacher-forced exact answers per task, and box IoU > 0.5 read from the predicted tokens."""
    import torch

    model.eval()
    scores: dict[str, list[float]] = {}
    with torch.no_grad():
        for start in range(0, len(held_out), 16):
            chunk = held_out[start:start + 16]
            inputs = batches.collate(chunk)
            predicted = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits.argmax(-1)
            for i, (name, truth, _, ans) in enumerate(chunk):
                span = (inputs["labels"][i] != IGNORE).nonzero().flatten()
                guess = predicted[i, span - 1].tolist()
                scores.setdefault(name, []).append(float(guess == ans))
                if batches.spec["tasks"][name].get("box"):
                    box = read_box(batches.tokenizer.decode(guess), batches.spec["space"])
                    key = "iou>0.5" if name == "detect" else f"{name} iou>0.5"
                    scores.setdefault(key, []).append(float(iou(box, truth) > 0.5))
    model.train()
    return {name: sum(v) / len(v) for name, v in scores.items()}


def save(model, processor, ids: dict[str, int], out: Path, digest: str, record: dict) -> None:
    """Write the fp16 checkpoint, processors, tokenizer, greedy generation config and hash."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    half = copy.deepcopy(model).to(torch.float16)
    half.config.dtype = "float16"
    half.save_pretrained(out)
    processor.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    processor.video_processor.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    # Greedy by default (top_k 1), as vLLM reads it: the tests ask as a user would, with no flags.
    generation = {"bos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"],
                  "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]], "do_sample": False,
                  "top_k": 1}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=1) + "\n")
    (out / "training.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    (out / "source.sha256").write_text(digest + "\n")


def learning_rate(step: int, elapsed: float, budget: float, peak: float = LR) -> float:
    """Linear warm-up by steps, then a cosine to FLOOR over the wall-time budget."""
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    progress = min(1.0, elapsed / budget)
    return peak * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


def fresh(spec: dict):
    """Stage 1: a new tokenizer, processor and model; the record it starts from (none)."""
    from tier_model_families import qwen2_vl_processor
    from tier_model_builder import make_tokenizer

    tok = train_tokenizer(spec)
    ids = {token: tok.token_to_id(token) for token in SPECIAL_TOKENS}
    processor = qwen2_vl_processor(make_tokenizer(tok), CHAT_TEMPLATE)
    return processor, make_model(len(tok.get_vocab()), ids), ids, None


def resumed(spec: dict, folder: Path):
    """Stage 2: the processor and model of a trained folder (fp16 weights back to fp32), its record."""
    import torch
    from transformers import AutoProcessor, GenerationConfig, Qwen2VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen2VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    model.config.dtype = "float32"
    # The folder's greedy top_k 1 fails transformers' own check on save; save() writes it again.
    model.generation_config = GenerationConfig.from_model_config(model.config)
    ids = {token: processor.tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    record = json.loads((folder / "training.json").read_text())
    return processor, model, ids, record


def set_video_pixels(processor, spec: dict) -> None:
    """Frames keep the size mmcli sends them at (the released checkpoints' floor is 128 tokens)."""
    low = spec["video"]["min_pixels"]
    video = processor.video_processor
    video.min_pixels = low
    video.size = {"shortest_edge": low, "longest_edge": video.size["longest_edge"]}


def rank(scores: dict) -> tuple[float, float]:
    """Which checkpoint is best: the worst box score first, then the mean of all scores."""
    boxes = [v for k, v in scores.items() if k.endswith("iou>0.5")]
    return min(boxes, default=0.0), sum(scores.values()) / len(scores)


def parse_args(argv: list[str] | None):
    """The trainer's command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--hash", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1)
    parser.add_argument("--init", type=Path, help="stage 2: the stage-1 folder to go on from")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train until the step or time budget is spent; keep the best held-out checkpoint."""
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(TRAIN_SEED + args.stage - 1)
    spec = json.loads(args.spec.read_text())
    processor, model, ids, before = fresh(spec) if args.stage == 1 else resumed(spec, args.init)
    if args.stage == 2:
        set_video_pixels(processor, spec)
    print(f"stage {args.stage}: vocabulary {len(processor.tokenizer)}, "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    stream = Batches(spec, processor, TRAIN_SEED + 100 * (args.stage - 1), args.stage)
    checker = Batches(spec, processor, HELD_OUT_SEED - args.stage, args.stage)
    held_out = [checker.sample(name) for name in checker.names for _ in range(EVAL_PER_TASK)]
    peak = STAGE_LR[args.stage]
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.98), weight_decay=0.01)
    budget, start, last_eval, best = args.minutes * 60, time.monotonic(), time.monotonic(), None
    model.train()
    step = 0
    while step < args.max_steps and time.monotonic() - start < budget:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, time.monotonic() - start, budget, peak)
        loss = model(**stream.collate([stream.sample() for _ in range(BATCH)])).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        elapsed = time.monotonic() - start
        if step % 10 == 0:
            print(f"step {step} loss {loss.item():.4f} {elapsed / step:.2f} s/step", flush=True)
        if time.monotonic() - last_eval > EVAL_EVERY_S or step == args.max_steps or elapsed >= budget:
            last_eval = time.monotonic()
            scores = evaluate(model, checker, held_out)
            print(f"step {step} held-out {scores}", flush=True)
            if best is None or rank(scores) >= best:
                best = rank(scores)
                record = {"stage": args.stage, "steps": step, "minutes": round(elapsed / 60, 1),
                          "held_out": scores, "batch": BATCH, "lr": peak, "threads": args.threads}
                if before is not None:
                    record["from"] = before
                save(model, processor, ids, args.out, args.hash, record)
                print(f"saved step {step} to {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
