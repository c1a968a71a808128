"""Per family: the real vLLM server counts exactly the visual tokens mmcli planned for an image.

Each tiny model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) is served in turn with the tier's usual
flags; ``mmcli ask IMAGE --family F --json`` is compared with the same question without
the image. The difference is the image's grid tokens plus the two vision markers the chat
template writes around it. Qwen3-VL's 32 px grid (16 px patches merged 2x2) is the one
that differs from the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tier_media

pytest.importorskip("mmcli")

PROMPT = "Describe this."
FACTORS = {"qwen2-vl": 28, "qwen2.5-vl": 28, "qwen3-vl": 32}
CLIENT_IMAGE_TOKENS = 1280  # mmcli's default per-image budget, in tokens of the family's grid
# Measured on the tiny Qwen3-VL before this test existed; the plan must keep producing them.
QWEN3_TOKENS = {"4032x2268": 1222, "exif-1600x1200": 1230, "640x480": 300}


def _wide(path: Path) -> Path:
    return tier_media.save_jpeg(tier_media.photo(4032, 2268, "astronaut"), path)


def _rotated(path: Path) -> Path:
    # stored 1600x1200 with EXIF orientation 6: upright it is a 1200x1600 portrait
    return tier_media.rotated_phone_photo(path, upright_width=1200, upright_height=1600)


def _small(path: Path) -> Path:
    return tier_media.save_jpeg(tier_media.photo(640, 480, "coffee"), path)


# name -> (maker, upright width, upright height)
IMAGES = {"4032x2268": (_wide, 4032, 2268), "exif-1600x1200": (_rotated, 1200, 1600),
          "640x480": (_small, 640, 480)}


def run_mmcli(*args: str) -> subprocess.CompletedProcess:
    """``python -m mmcli ARGS`` with no endpoint variables and an empty config home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    with tempfile.TemporaryDirectory(prefix="mmcli-home-") as home:
        env.update(HOME=home, XDG_CONFIG_HOME=str(Path(home) / "config"), COLUMNS="200")
        return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True,
                              timeout=300, env=env, check=False)


def ask_json(server, *inputs: str) -> dict:
    """``mmcli ask INPUTS PROMPT --family F --json`` against a family's server, one greedy token."""
    proc = run_mmcli("ask", *inputs, PROMPT, "--base-url", server.base_url, "--model", server.model,
                     "--family", server.family, "--max-tokens", "1", "--temperature", "0", "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """The three test photos, written once."""
    folder = tmp_path_factory.mktemp("family_images")
    return {name: make(folder / f"{name}.jpg") for name, (make, _, _) in IMAGES.items()}


@pytest.fixture(scope="module")
def text_only_tokens(family_server) -> int:
    """The server's prompt tokens for the question alone."""
    result = ask_json(family_server)
    assert result["plan"]["items"] == []
    return result["usage"]["prompt_tokens"]


def expected_plan(family: str, width: int, height: int) -> tuple[int, int, int]:
    """Reference resize of an upright image under mmcli's default budget: (width, height, tokens)."""
    factor = FACTORS[family]
    h_bar, w_bar = tier_media.smart_resize(height, width, factor, 4 * factor**2,
                                           CLIENT_IMAGE_TOKENS * factor**2)
    return w_bar, h_bar, (w_bar // factor) * (h_bar // factor)


@pytest.mark.parametrize("name", list(IMAGES))
def test_server_counts_the_planned_visual_tokens(family_server, text_only_tokens, image_files, name):
    family = family_server.family
    result = ask_json(family_server, str(image_files[name]))
    assert result["plan"]["family"] == family
    [item] = result["plan"]["items"]
    planned = item["visual_tokens"]
    _, width, height = IMAGES[name]
    sent = (item["sent_width"], item["sent_height"], planned)
    assert sent == expected_plan(family, width, height), f"{family} plan for {name}: {sent}"
    if family == "qwen3-vl":
        assert planned == QWEN3_TOKENS[name]
    server_visual = result["usage"]["prompt_tokens"] - text_only_tokens - 2
    assert server_visual == planned, (
        f"{family} {name}: mmcli planned {planned} visual tokens for a "
        f"{item['sent_width']}x{item['sent_height']} image, the server counted {server_visual} "
        f"({result['usage']['prompt_tokens']} prompt tokens - {text_only_tokens} without the image "
        f"- 2 vision markers)")
