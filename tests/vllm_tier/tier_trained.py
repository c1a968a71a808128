"""The tier's trained tiny models: what they were taught, the hash that says they are current, retraining.

The models are trained once on mmcli's own requests (the `ask` question, the family's grounding
prompt and answer convention, the `docqa` page prompt) and committed as fp16 test data in
``tests/vllm_tier/trained/<family>/``, with the hash of the training code and of the spec below.
The tier serves the committed folders and never retrains; when the hash no longer matches (the
trainer, the scenes or one of mmcli's prompts changed), the tests fail and say to run:

    python tests/vllm_tier/tier_trained.py train --family qwen2-vl [--minutes 40]
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
TASK_WEIGHTS = {"detect": 0.7, "ask": 0.2, "docqa": 0.1}


class StaleModel(RuntimeError):
    """A committed trained model does not match the code and prompts that should have made it."""


def spec(family: str) -> dict:
    """Everything the trainer is taught for ``family``, read from mmcli's own prompt code."""
    from mmcli.grounding.prompts import grounding_prompt
    from mmcli.media.jpeg import JPEG_QUALITY
    from mmcli.models import family_for_model
    from mmcli.tasks.docqa import SINGLE_PROMPT

    space = family_for_model(SERVED_NAMES[family]).box_convention
    image = {"type": "image"}
    detect = grounding_prompt(family, TARGET, points=False, space=space, sent_size=(224, 224))
    tasks = {
        "detect": {"content": [image, {"type": "text", "text": detect}],
                   "answer": BOX_ANSWERS[family].replace("$target", TARGET)},
        "ask": {"content": [image, {"type": "text", "text": ASK_QUESTION}], "answer": ASK_ANSWER},
        "docqa": {"content": [{"type": "text", "text": "Page 1"}, image,
                              {"type": "text", "text": SINGLE_PROMPT.format(question=ASK_QUESTION)}],
                  "answer": DOCQA_ANSWER},
    }
    for name, weight in TASK_WEIGHTS.items():
        tasks[name]["weight"] = weight
    return {"family": family, "space": space, "jpeg_quality": JPEG_QUALITY, "tasks": tasks}


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


def train(family: str, minutes: float, max_steps: int, out: Path | None = None, threads: int = 1) -> int:
    """Train ``family`` with the tier venv's python (niced) and write the committed folder."""
    import tier

    paths = tier.prepare()
    out = out or model_dir(family)
    spec_path = TRAINED_DIR / f".{family}.spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec(family), indent=1, sort_keys=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), HF_HOME=str(paths.cache_dir / f".hf-train-{os.getpid()}"))
    argv = ["nice", "-n", "10", str(paths.python), str(TRAINER), "--spec", str(spec_path),
            "--out", str(out), "--minutes", str(minutes), "--max-steps", str(max_steps),
            "--hash", source_hash(family), "--threads", str(threads)]
    start = time.monotonic()
    child = subprocess.Popen(argv, env=env)
    try:
        code = child.wait()
    finally:
        if child.poll() is None:  # Ctrl-C or SIGTERM here: stop the trainer too
            child.terminate()
            child.wait()
        spec_path.unlink(missing_ok=True)
    print(f"trainer exited with {code} after {(time.monotonic() - start) / 60:.1f} min", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Command line: train one family, or check every committed model's hash."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train", help="train a family's model and write its committed folder")
    train_parser.add_argument("--family", choices=FAMILIES, default="qwen2-vl")
    train_parser.add_argument("--minutes", type=float, default=40.0,
                              help="wall-time budget; the learning rate's cosine follows it")
    train_parser.add_argument("--max-steps", type=int, default=2000)
    # On a loaded CPU two OpenMP threads spin while waiting for each other: measured here, a step
    # cost 4x the CPU time of one thread.  On an idle machine, 2 is faster.
    train_parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    train_parser.add_argument("--out", type=Path, default=None, help="default: the committed folder")
    sub.add_parser("check", help="exit 1 when a committed model is missing or stale")
    args = parser.parse_args(argv)
    if args.command == "train":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the trainer is stopped too
        return train(args.family, args.minutes, args.max_steps, args.out, args.threads)
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
