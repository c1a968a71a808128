"""The tier's trained tiny models: what they were taught, the hash that says they are current, retraining.

The models are trained once on mmcli's own requests (the `ask` question, the family's grounding
prompt and answer convention, the `docqa` page prompt) and committed as fp16 test data in
``tests/vllm_tier/trained/<family>/``, with the hash of the training code and of the spec below.
The tier serves the committed folders and never retrains; when the hash no longer matches (the
trainer, the scenes or one of mmcli's prompts changed), the tests fail and say to run:

    python tests/vllm_tier/tier_trained.py train --family qwen2-vl [--minutes 72 --video-minutes 45]
    python tests/vllm_tier/tier_trained.py check      # exit 1 when a committed model is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (HERE, ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

TRAINED_DIR = HERE / "trained"
TRAINER = HERE / "tier_train.py"
# Sources whose every byte shapes the trained weights (the builder lends the chat template and tokens).
TRAINING_SOURCES = (TRAINER, HERE / "tier_scenes.py", HERE / "tier_model_builder.py",
                    HERE / "tier_model_families.py")
HASH_FILE = "source.sha256"
FAMILIES = ("qwen2-vl",)
SERVED_NAMES = {"qwen2-vl": "qwen2-vl-trained"}
RETRAIN = "python tests/vllm_tier/tier_trained.py train --family {family}"

ASK_QUESTION = "What colour is the box?"
ASK_ANSWER = "The box is $colour."
DOCQA_ANSWER = "The box is $colour (p. 1)."
TARGET = "the box"
# Each family's answer, as its released checkpoints write it; $x1.. are in the family's space.
BOX_ANSWERS = {
    "qwen2-vl": ("<|object_ref_start|>$target<|object_ref_end|>"
                 "<|box_start|>($x1,$y1),($x2,$y2)<|box_end|>"),
}
VIDEO_WHERE = "Where is the box in the last frame?"
VIDEO_COLOUR = "What colour is the box in the last frame?"
# Each task's share of a batch in stage 1 (images, from scratch) and stage 2 (clips added).
TASK_WEIGHTS = {"detect": (0.7, 0.3), "ask": (0.2, 0.1), "docqa": (0.1, 0.1),
                "video_box": (0.0, 0.35), "video_colour": (0.0, 0.15)}
# Clips are sent at their own 224x224 (mmcli video --min-pixels VIDEO_MIN_PIXELS): 64 tokens a frame pair.
VIDEO_MIN_PIXELS = 4 * 28 * 28
VIDEO_FLAGS = ("--min-pixels", str(VIDEO_MIN_PIXELS))


class StaleModel(RuntimeError):
    """A committed trained model does not match the code and prompts that should have made it."""


def spec(family: str) -> dict:
    """Everything the trainer is taught for ``family``, read from mmcli's own prompt code."""
    from mmcli.tasks.detect.prompts import grounding_prompt
    from mmcli.media.jpeg import JPEG_QUALITY
    from mmcli.families import family_for_model
    from mmcli.tasks.docqa import SINGLE_PROMPT
    from tier_scenes import CLIP_FRAMES

    space = family_for_model(SERVED_NAMES[family]).box_convention
    image, video = {"type": "image"}, {"type": "video"}
    box_answer = BOX_ANSWERS[family].replace("$target", TARGET)
    detect = grounding_prompt(family, TARGET, points=False, space=space, sent_size=(224, 224))
    tasks = {
        "detect": {"content": [image, {"type": "text", "text": detect}], "answer": box_answer, "box": True},
        "ask": {"content": [image, {"type": "text", "text": ASK_QUESTION}], "answer": ASK_ANSWER},
        "docqa": {"content": [{"type": "text", "text": "Page 1"}, image,
                              {"type": "text", "text": SINGLE_PROMPT.format(question=ASK_QUESTION)}],
                  "answer": DOCQA_ANSWER},
        # What `mmcli video CLIP QUESTION` sends: the frame list first, then the question.
        "video_box": {"content": [video, {"type": "text", "text": VIDEO_WHERE}], "answer": box_answer,
                      "box": True, "video": True},
        "video_colour": {"content": [video, {"type": "text", "text": VIDEO_COLOUR}], "answer": ASK_ANSWER,
                         "video": True},
    }
    for name, weights in TASK_WEIGHTS.items():
        tasks[name]["weights"] = list(weights)
    return {"family": family, "space": space, "jpeg_quality": JPEG_QUALITY, "tasks": tasks,
            "video": {"frames": CLIP_FRAMES, "min_pixels": VIDEO_MIN_PIXELS}}


def source_hash(family: str) -> str:
    """Hash of the training sources and of ``family``'s spec: equal hashes, same teaching."""
    digest = hashlib.sha256(json.dumps(spec(family), sort_keys=True).encode())
    for source in TRAINING_SOURCES:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def model_dir(family: str) -> Path:
    """The committed folder of ``family``'s trained model."""
    return TRAINED_DIR / family


def check_fresh(family: str) -> Path:
    """The committed model folder of ``family``, or StaleModel saying how to retrain it."""
    folder = model_dir(family)
    want = source_hash(family)
    try:
        have = (folder / HASH_FILE).read_text(encoding="ascii").strip()
    except OSError:
        have = None
    if have != want:
        state = "missing" if have is None else f"stale (made by {have[:12]}, code and prompts now {want[:12]})"
        raise StaleModel(f"the trained {family} model in {folder} is {state}: the training code or "
                         f"one of mmcli's prompts changed. Retrain it with: {RETRAIN.format(family=family)}")
    return folder


def train(family: str, minutes: float, max_steps: int, out: Path | None = None, threads: int = 1,
          video_minutes: float = 45.0, stages: str = "both") -> int:
    """Train ``family`` with the tier venv's python (niced) and write the committed folder.

    Stage 1 trains from scratch on the image tasks into a scratch folder; stage 2 goes on from it
    (or, with ``stages="2"``, from the committed folder) with the clips mixed in, into ``out``.
    """
    paths, spec_path, env = _tier_run(family, threads)
    out = out or model_dir(family)
    base = ["nice", "-n", "10", str(paths.python), str(TRAINER), "--spec", str(spec_path),
            "--max-steps", str(max_steps), "--hash", source_hash(family), "--threads", str(threads)]
    first = paths.cache_dir / f"trained-{family}-stage1"  # scratch: only stage 2's end is committed
    runs = []
    if stages in ("both", "1"):
        runs.append(["--stage", "1", "--minutes", str(minutes), "--out", str(first if stages == "both" else out)])
    if stages in ("both", "2"):
        init = first if stages == "both" else model_dir(family)
        runs.append(["--stage", "2", "--minutes", str(video_minutes), "--init", str(init), "--out", str(out)])
    start, code = time.monotonic(), 0
    try:
        for run in runs:
            code = _run(base + run, env)
            if code:
                break
    finally:
        spec_path.unlink(missing_ok=True)
    print(f"trainer exited with {code} after {(time.monotonic() - start) / 60:.1f} min", file=sys.stderr)
    return code


def evaluate(family: str, folder: Path | None, count: int, threads: int = 1) -> int:
    """Print the held-out accuracy of a trained folder under transformers' greedy decoding."""
    paths, spec_path, env = _tier_run(family, threads)
    argv = ["nice", "-n", "10", str(paths.python), str(HERE / "tier_trained_eval.py"), "--spec", str(spec_path),
            "--model", str(folder or model_dir(family)), "--count", str(count)]
    try:
        return _run(argv, env)
    finally:
        spec_path.unlink(missing_ok=True)


def _tier_run(family: str, threads: int):
    """The tier's paths, ``family``'s spec written for the tier venv's python, and its environment."""
    import tier

    paths = tier.prepare()
    spec_path = paths.cache_dir / f"trained-{family}-{os.getpid()}.spec.json"
    spec_path.write_text(json.dumps(spec(family), indent=1, sort_keys=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), HF_HOME=str(paths.cache_dir / f".hf-train-{os.getpid()}"))
    return paths, spec_path, env


def _run(argv: list[str], env: dict) -> int:
    """One trainer run; Ctrl-C or SIGTERM here stops the trainer too."""
    child = subprocess.Popen(argv, env=env)
    try:
        return child.wait()
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    """Command line: train one family, or check every committed model's hash."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train", help="train a family's model and write its committed folder")
    train_parser.add_argument("--family", choices=FAMILIES, default="qwen2-vl")
    train_parser.add_argument("--minutes", type=float, default=72.0,
                              help="stage 1's wall-time budget (images, from scratch); the learning "
                                   "rate's cosine follows it")
    train_parser.add_argument("--video-minutes", type=float, default=45.0,
                              help="stage 2's wall-time budget (clips mixed with the images)")
    train_parser.add_argument("--stages", choices=("both", "1", "2"), default="both",
                              help="2: go on from the committed folder (when only the clips changed)")
    train_parser.add_argument("--max-steps", type=int, default=5000, help="per stage")
    # On a loaded CPU two OpenMP threads spin while waiting for each other: measured here, a step
    # cost 4x the CPU time of one thread.  On an idle machine, 2 is faster.
    train_parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    train_parser.add_argument("--out", type=Path, default=None, help="default: the committed folder")
    sub.add_parser("check", help="exit 1 when a committed model is missing or stale")
    eval_parser = sub.add_parser("evaluate", help="held-out accuracy under transformers' greedy decoding")
    eval_parser.add_argument("--family", choices=FAMILIES, default="qwen2-vl")
    eval_parser.add_argument("--model", type=Path, default=None, help="default: the committed folder")
    eval_parser.add_argument("--count", type=int, default=50, help="held-out scenes and clips per task")
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        return evaluate(args.family, args.model, args.count)
    if args.command == "train":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the trainer is stopped too
        return train(args.family, args.minutes, args.max_steps, args.out, args.threads,
                     args.video_minutes, args.stages)
    failed = 0
    for family in FAMILIES:
        try:
            print(f"{family}: current ({check_fresh(family)})")
        except StaleModel as exc:
            print(f"{family}: {exc}", file=sys.stderr)
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
