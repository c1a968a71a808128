"""Shared fixtures: run the real `mmcli` program in a clean environment, a scripted endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.support.scripted_server import ScriptedServer

SECRET_KEY = "sk-test-SECRET-key-0123456789"
# A Qwen2.5-VL answer with two boxes, in pixels of the sent image.
TWO_BOXES = '[{"bbox_2d": [100, 200, 300, 400], "label": "dog"}, {"bbox_2d": [500, 100, 700, 500], "label": "cat"}]'


@dataclass
class Run:
    """A finished mmcli process."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


@pytest.fixture
def clean_env(tmp_path) -> dict[str, str]:
    """An environment with no endpoint variables and a private, empty config directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MMCLI_", "OPENAI_", "PARASAIL_", "XINFERENCE_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")  # no server a real `mmcli serve` recorded
    env["MMCLI_AUTOSTART"] = "0"  # an unreachable local endpoint must not start a vLLM
    env["HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def mmcli(clean_env):
    """Run `python -m mmcli ARGS` as a user would; returns a Run."""

    def run(*args: str, stdin: Optional[bytes] = None, env: Optional[dict] = None, timeout: float = 60) -> Run:
        full_env = dict(clean_env, **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "mmcli", *map(str, args)],
                              input=stdin if stdin is not None else b"", capture_output=True,
                              env=full_env, timeout=timeout, cwd=Path(__file__).parent.parent)
        return Run(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))

    return run


@pytest.fixture
def server():
    """A scripted OpenAI-compatible endpoint on 127.0.0.1."""
    with ScriptedServer() as srv:
        yield srv


def assert_clean_error(run: Run, code: int, *fragments: str) -> None:
    """Exit `code`, one `mmcli: error:` line naming every fragment, a hint at most, no traceback."""
    assert run.code == code, (run.code, run.stdout, run.stderr)
    assert "Traceback" not in run.output
    error_lines = [line for line in run.stderr.splitlines() if line.startswith("mmcli: error:")]
    assert len(error_lines) == 1, run.stderr
    for fragment in fragments:
        assert fragment.lower() in error_lines[0].lower(), (fragment, error_lines[0])
    assert SECRET_KEY not in run.output


@pytest.fixture
def scene(tmp_path):
    """A 2240x1680 grey PNG, sent at exactly 1120x840 with --max-pixels 940800."""
    path = tmp_path / "in" / "scene.png"
    path.parent.mkdir()
    from PIL import Image

    Image.new("RGB", (2240, 1680), (128, 128, 128)).save(path)
    return path
