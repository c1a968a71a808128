"""Held-out accuracy of a trained tier model under transformers' greedy decoding (tier venv's python).

    python tier_trained_eval.py --spec SPEC.json --model DIR [--count 50]   (tier_trained.py evaluate runs it)

Each task is asked about held-out scenes and clips (the tests' seeds, from index 0), sent as mmcli
sends them (JPEG at mmcli's quality; a clip written as mp4v, decoded, its frames as JPEGs); the
answers are decoded greedily and scored as the tier tests score them: the named colour, or the box
read from the answer with IoU > 0.5.  The tier tests do the same through vLLM.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tier_scenes  # noqa: E402
from tier_train import iou, jpeg, read_box  # noqa: E402


def ask(model, processor, content: list[dict], **media) -> str:
    """The greedy answer to one request, special tokens kept."""
    import torch

    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    inputs = processor(text=[prompt], return_tensors="pt", **media)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=False)


def score(task: dict, answer: str, colour: str, box, space: str) -> bool:
    """Whether an answer is right: its box overlaps the truth (IoU > 0.5), or it names the colour alone."""
    if task.get("box"):
        return iou(read_box(answer, space), box) > 0.5
    named = {word for word in tier_scenes.COLOURS if word in answer.lower()}
    return named == {colour}


def main(argv: list[str] | None = None) -> int:
    """Print each task's held-out accuracy as JSON."""
    import torch
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    processor = AutoProcessor.from_pretrained(args.model)
    model = Qwen2VLForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    results: dict[str, list[bool]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, task in spec["tasks"].items():
            for index in range(args.count):
                if task.get("video"):
                    drawn = tier_scenes.held_out_clip(index)
                    frames = [jpeg_frame(data) for data in tier_scenes.sent_frames(drawn, folder,
                                                                                  spec["jpeg_quality"])]
                    answer = ask(model, processor, task["content"], videos=[frames])
                    colour, box = drawn.last
                else:
                    scene = tier_scenes.held_out(index)
                    image = jpeg(scene.pixels, spec["jpeg_quality"])
                    answer = ask(model, processor, task["content"], images=[image])
                    colour, box = scene.colour, scene.box
                results.setdefault(name, []).append(score(task, answer, colour, box, spec["space"]))
            print(f"{name}: {sum(results[name])}/{len(results[name])}", file=sys.stderr, flush=True)
    print(json.dumps({name: f"{sum(r)}/{len(r)}" for name, r in results.items()}))
    return 0


def jpeg_frame(data: bytes):
    """One sent JPEG frame as an RGB picture."""
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


if __name__ == "__main__":
    sys.exit(main())
