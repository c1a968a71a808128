"""Peak memory of `mmcli embed` over many images and of a long `mmcli chat`, beside the same runs of the version
whose results kept every request body and image.

    python bench/memory.py [--images 100,300] [--turns 30] [--reference REV | --no-reference]

Each run is a real `python -m mmcli` process against the scripted local endpoint of tests/support (embeddings
computed from the images, short chat answers); its peak resident memory comes from the kernel (wait4's
ru_maxrss). The images are 800x600 JPEGs of noise (about 400 KB each, sent at about that size), so what a run
keeps per image shows. The reference is the same runs on REV, unpacked from this repository with `git archive`.
What is left per image after the change is the input step's copy of each file (every input is read and checked
before anything is sent).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEEPING_EVERYTHING = "3b0af26"  # the last version whose Runner and embed results kept request bodies and images


def make_images(folder: Path, count: int) -> None:
    """`count` noise JPEGs: each about as large as it is sent."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(folder / f"img{i:04d}.jpg",
                                                                                  quality=90)


def peak_mb(checkout: Path, args: list[str], home: Path, stdin: bytes = b"") -> float:
    """Run `python -m mmcli ARGS` from `checkout`; its peak resident memory in MB (it must exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    env.update(XDG_STATE_HOME=str(home / "state"), XDG_CONFIG_HOME=str(home / "config"), MMCLI_AUTOSTART="0")
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", *args], cwd=checkout, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stdin.write(stdin)
    proc.stdin.close()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 also gives this child's own peak
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"mmcli {args[0]} failed in {checkout} ({proc.returncode}): {err.decode()[-800:]}")
    return usage.ru_maxrss / 1024


def unpack(rev: str, into: Path) -> Path:
    """The tree of `rev` of this repository, unpacked into `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def runs(images: list[int], turns: int, folder: Path, out: Path) -> list[tuple[str, list[str], bytes, object]]:
    """(label, mmcli arguments, stdin, server) for every measured run; the server's URL is filled in later."""
    chat_lines = "".join(f"/attach {folder / f'img{i:04d}.jpg'}\nquestion {i}?\n" for i in range(turns)).encode()
    listed = [(f"embed {n} images", ["embed", str(folder / str(n)), "-o", str(out), "--force", "--max-pages", str(n)],
               b"", "embed") for n in images]
    return listed + [(f"chat {turns} turns, an image each", ["chat"], chat_lines, "chat"),
                     (f"chat {2 * turns} turns, older media pruned", ["chat"],
                      "".join(f"/attach {folder / f'img{i:04d}.jpg'}\nquestion {i}?\n"
                              for i in range(2 * turns)).encode(), "prune")]


def main() -> int:
    """Measure every run on this checkout and (unless --no-reference) on the reference; print them side by side."""
    from tests.support.embed_server import EmbeddingServer
    from tests.support.scripted_server import DEFAULT_MODEL, Reply

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="100,300", help="image counts for embed, comma-separated")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--reference", default=KEEPING_EVERYTHING)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    counts = sorted(int(n) for n in args.images.split(","))
    with tempfile.TemporaryDirectory(prefix="mmcli-bench-memory-") as tmp:
        tmp_path = Path(tmp)
        folder = tmp_path / "images"
        make_images(folder, max(counts + [2 * args.turns]))
        for n in counts:  # embed takes a folder: one of the first n images each
            (folder / str(n)).mkdir()
            for i in range(n):
                os.link(folder / f"img{i:04d}.jpg", folder / str(n) / f"img{i:04d}.jpg")
        checkouts = {"now": ROOT}
        if not args.no_reference:
            checkouts["keeping everything"] = unpack(args.reference, tmp_path / "reference")
        table: dict[str, dict[str, float]] = {}
        # a Qwen2.5-VL id: the chat knows what each image costs, so it can leave older media out to fit
        with EmbeddingServer(models=[DEFAULT_MODEL], default=Reply("a short answer")) as server:
            server.requests = _Forgetful()  # the endpoint keeps no bodies: only mmcli's memory grows
            for label, argv, stdin, kind in runs(counts, args.turns, folder, tmp_path / "vectors.jsonl"):
                server.max_model_len = 4000 if kind == "prune" else 32768  # 4000: about five images fit
                for name, checkout in checkouts.items():
                    home = Path(tempfile.mkdtemp(dir=tmp_path))  # nothing learnt about the endpoint carries over
                    table.setdefault(label, {})[name] = peak_mb(checkout, argv + ["--base-url", server.base_url],
                                                                home, stdin)
    show(table, list(checkouts), counts)
    return 0


class _Forgetful(list):
    def append(self, item) -> None:
        """Recorded requests are dropped."""


def show(table: dict[str, dict[str, float]], names: list[str], counts: list[int]) -> None:
    """Peak MB per run and checkout, the ratio, and embed's MB per image between the smallest and largest count."""
    print(f"{'run':<40}" + "".join(f"{name:>22}" for name in names) + ("   ratio" if len(names) > 1 else ""))
    for label, peaks in table.items():
        ratio = f"   {peaks[names[1]] / peaks[names[0]]:.2f}x" if len(names) > 1 else ""
        print(f"{label:<40}" + "".join(f"{peaks[name]:>19.1f} MB" for name in names) + ratio)
    if len(counts) > 1:
        low, high = f"embed {counts[0]} images", f"embed {counts[-1]} images"
        slopes = [(table[high][name] - table[low][name]) / (counts[-1] - counts[0]) for name in names]
        print(f"{'embed: MB more per image':<40}" + "".join(f"{s:>19.2f} MB" for s in slopes))


if __name__ == "__main__":
    sys.exit(main())
