"""Ray Data beside the tier's vLLM: a small venv layered over the tier venv, for `--engine ray --backend vllm`.

The tier venv stays as it is (its hash, its 3.5 GB): this venv holds only Ray Data and what mmcli needs that the
tier venv lacks, and sees the tier venv's packages (vLLM, torch, transformers) through a .pth file. Cached beside
the tier venv, named after its key and Ray's version; a cold build downloads Ray and pyarrow (about 150 MB) and
takes a minute or two.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import tier_venv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RAY = "2.60.0"
MARKER = "ray-complete.json"


def ray_venv(paths) -> Path:
    """Where the layered venv is."""
    return paths.cache_dir / f"venv-ray-{RAY}-on-{tier_venv.venv_key()}"


def mmcli_requirements() -> list[str]:
    """mmcli's own dependencies, as pyproject.toml lists them."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [f"ray[data]=={RAY}", *project["dependencies"], *project["optional-dependencies"]["ray"]]


def prepare_ray(paths, log) -> Path:
    """Build (or reuse) the layered venv; its python."""
    import tier

    venv = ray_venv(paths)
    python = tier_venv.venv_python(venv)
    if (venv / MARKER).exists():
        return python
    with tier._locked(paths.cache_dir):
        if (venv / MARKER).exists():
            return python
        start = time.monotonic()
        log_path = venv.with_name(venv.name + ".build.log")
        log_path.write_text("", encoding="utf-8")
        log(f"vllm tier: building the Ray venv {venv} (log: {log_path})")
        base = subprocess.check_output([str(paths.python), "-c", "import sys; print(sys._base_executable)"],
                                       text=True).strip()
        tier_venv.run_logged([base, "-m", "venv", "--clear", str(venv)], log_path)
        site = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       text=True).strip()
        tier_site = subprocess.check_output(
            [str(paths.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
        Path(site, "vllm-tier.pth").write_text(tier_site + "\n", encoding="utf-8")
        tier_venv.run_logged([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar",
                              "off", *mmcli_requirements()], log_path)
        tier_venv.run_logged([str(python), "-c", "import ray.data.llm, vllm, httpx2, cv2, pdf2image"], log_path)
        (venv / MARKER).write_text(json.dumps({"ray": RAY, "on": tier_venv.venv_key()}), encoding="utf-8")
        log(f"vllm tier: Ray venv built in {time.monotonic() - start:.0f}s")
    return python


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    import tier

    print(prepare_ray(tier.prepare(), tier._log))
