"""Image preparation and start-up time: mmcli against the usual ways, side by side in one run.

    python bench/image_prep.py [--runs N] [--image PATH]

Prints medians, ratios, payload sizes and how far each sent image is from a full decode resized with
Lanczos (mean absolute difference on 0-255: how good the picture is, not only how fast). Targets:
preparation at least 5x faster than plain PIL open + resize, payload at most 1/5 of raw base64;
`mmcli --help` at most 2x `import typer`. mmcli prepares a JPEG with Pillow alone: decoded at 1/2,
1/4 or 1/8 scale (never below the grid), one resize to exactly the grid, EXIF orientation applied.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's mmcli


def make_photo(directory: Path) -> Path:
    """A 12-megapixel JPEG made from a real photo (scikit-image's astronaut), as a phone would save it."""
    import numpy as np
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((4032, 3024), Image.LANCZOS)
    noise = np.random.default_rng(0).normal(0, 4, (3024, 4032, 3))  # sensor grain, as real photos have
    pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
    path = directory / "photo-12mp.jpg"
    Image.fromarray(pixels).save(path, quality=92)
    return path


def median_seconds(fn, runs: int) -> tuple[float, object]:
    """Median wall time of `fn()` over `runs` runs (after one warm-up), and its last result."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def mmcli_prep(path: Path) -> str:
    from mmcli.media.image import open_image, prepare_image
    from mmcli.media.resize import PixelBudget
    from mmcli.core.wire import data_url

    budget = PixelBudget(factor=28, min_pixels=4 * 784, max_pixels=1280 * 784)
    prepared = prepare_image(open_image(path.read_bytes(), str(path)), budget)
    return data_url(prepared.data, prepared.mime)


def raw_base64(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def pil_open_resize(path: Path, size: tuple[int, int]) -> str:
    from PIL import Image

    image = Image.open(path).convert("RGB").resize(size)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def distance(data_url: str, reference) -> float:
    """Mean absolute difference (0-255) between a sent image and the reference picture."""
    import numpy as np
    from PIL import Image

    sent = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    return float(np.abs(np.asarray(sent, np.float32) - np.asarray(reference, np.float32)).mean())


def startup(argv: list[str], runs: int) -> float:
    def once() -> None:
        subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)

    return median_seconds(once, runs)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.image or make_photo(Path(tmp))
        t_mmcli, ours = median_seconds(lambda: mmcli_prep(path), args.runs)
        t_raw, raw = median_seconds(lambda: raw_base64(path), args.runs)
        from mmcli.media.resize import smart_resize
        from PIL import Image

        width, height = Image.open(path).size
        h, w = smart_resize(height, width, 28, 4 * 784, 1280 * 784)
        t_pil, pil = median_seconds(lambda: pil_open_resize(path, (w, h)), args.runs)
        reference = Image.open(path).convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        far = {"mmcli": distance(ours, reference), "pil": distance(pil, reference)}
    print(f"image: {width}x{height}, {path.stat().st_size if args.image else 'generated'}; sent at {w}x{h}")
    print(f"{'method':<34}{'median s':>10}{'payload bytes':>16}{'MAD vs Lanczos':>16}")
    for name, seconds, payload, mad in (("mmcli (Pillow, DCT-scaled decode)", t_mmcli, ours, f"{far['mmcli']:.2f}"),
                                        ("plain PIL open + resize", t_pil, pil, f"{far['pil']:.2f}"),
                                        ("raw base64 of the file", t_raw, raw, "-")):
        print(f"{name:<34}{seconds:>10.4f}{len(payload):>16,}{mad:>16}")
    print(f"speed-up vs PIL open + resize: {t_pil / t_mmcli:.1f}x (target >= 5x)")
    print(f"payload vs raw base64: 1/{len(raw) / len(ours):.1f} (target <= 1/5)")
    t_help = startup([sys.executable, "-m", "mmcli", "--help"], args.runs)
    t_typer = startup([sys.executable, "-c", "import typer"], args.runs)
    print(f"start-up: mmcli --help {t_help:.3f} s, import typer {t_typer:.3f} s, ratio {t_help / t_typer:.2f}x "
          "(target <= 2x)")


if __name__ == "__main__":
    main()
