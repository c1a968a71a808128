"""Shared fixtures: run the real `mmcli` program in a clean environment, a scripted endpoint.

`mmcli` runs the command line inside the test process (tests/support/inprocess.py), isolated as a new
process would be; a test module or test marked `real_process` (or a run with MMCLI_TEST_RUNNER=process)
gets a real `python -m mmcli` process instead. `mmcli_process` always starts one: for exit codes from
signals, Ctrl-C, a closed stdout, real terminals, import-time behaviour and child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from mmcli.server.state import state_dir
from tests.support.private_state import XDG, leaks, tier_cache
from tests.support.scripted_server import PORTS_SERVED, ScriptedServer

SECRET_KEY = "sk-test-SECRET-key-0123456789"
# A Qwen2.5-VL answer with two boxes, in pixels of the sent image.
TWO_BOXES = '[{"bbox_2d": [100, 200, 300, 400], "label": "dog"}, {"bbox_2d": [500, 100, 700, 500], "label": "cat"}]'


# The user's own state folder and the tier's cache, read before any test moves XDG_*.
REAL_STATE = state_dir(os.environ)
TIER_CACHE = tier_cache(os.environ)


@pytest.fixture(scope="session", autouse=True)
def private_xdg_session(tmp_path_factory):
    """Private state and config folders for the whole session too: module- and session-scoped fixtures (a tier
    server's first question) are set up before any test's own folders, and wrote the user's history."""
    folder = tmp_path_factory.mktemp("xdg-session")
    with pytest.MonkeyPatch.context() as patch:
        # not XDG_CACHE_HOME: the tier's vLLM servers start from here and keep their compile caches there
        for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME"):
            patch.setenv(name, str(folder / name.lower()))
        yield folder


@pytest.fixture(autouse=True)
def private_xdg(monkeypatch, tmp_path_factory):
    """Every test, and every process it starts, gets its own empty XDG state, config and cache folders, so
    no test writes the user's history, probes or server state, or reads the user's config; the vLLM tier
    keeps its cache (MMCLI_VLLM_TIER_CACHE pinned). After the test: fail if the real state folder still
    got a probe or a history turn about a server this test started."""
    folder = tmp_path_factory.mktemp("xdg")
    for name in XDG:
        monkeypatch.setenv(name, str(folder / name.lower()))
    monkeypatch.setenv("MMCLI_VLLM_TIER_CACHE", TIER_CACHE)
    since, served_before = time.time(), set(PORTS_SERVED)
    yield folder
    # Only the ports opened during this test: other programs on this machine probe servers of their own, and a
    # port this process served earlier in the session may since belong to one of them.
    found = leaks(REAL_STATE, since, PORTS_SERVED - served_before)
    if found:
        pytest.fail(f"the test wrote into the real state folder {REAL_STATE}: " + "; ".join(found), pytrace=False)


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


ROOT = Path(__file__).parent.parent


def _decoded(code: int, stdout: bytes, stderr: bytes) -> Run:
    return Run(code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))


@pytest.fixture
def mmcli_process(clean_env):
    """Run `python -m mmcli ARGS` in a new process, as a user would; returns a Run."""

    def run(*args: str, stdin: Optional[bytes] = None, env: Optional[dict] = None, timeout: float = 60) -> Run:
        proc = subprocess.run([sys.executable, "-m", "mmcli", *map(str, args)],
                              input=stdin if stdin is not None else b"", capture_output=True,
                              env=dict(clean_env, **(env or {})), timeout=timeout, cwd=ROOT)
        return _decoded(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def mmcli_inprocess(clean_env):
    """Run `mmcli ARGS` inside this process, isolated as a new process would be; returns a Run.
    `stdout_tty`/`stderr_tty` make the captured streams say they are a terminal."""
    from tests.support.inprocess import run_in_process

    def run(*args: str, stdin: Optional[bytes] = None, env: Optional[dict] = None, timeout: float = 60,
            stdout_tty: bool = False, stderr_tty: bool = False) -> Run:
        return _decoded(*run_in_process([str(a) for a in args], dict(clean_env, **(env or {})),
                                        stdin=stdin if stdin is not None else b"", cwd=ROOT, timeout=timeout,
                                        stdout_tty=stdout_tty, stderr_tty=stderr_tty))

    return run


@pytest.fixture
def mmcli(request):
    """Run `mmcli ARGS` as a user would; returns a Run. In this process unless the test is marked
    `real_process` or MMCLI_TEST_RUNNER=process is set (to compare both ways)."""
    if request.node.get_closest_marker("real_process") or os.environ.get("MMCLI_TEST_RUNNER") == "process":
        return request.getfixturevalue("mmcli_process")
    return request.getfixturevalue("mmcli_inprocess")


@pytest.fixture
def server():
    """A scripted OpenAI-compatible endpoint on 127.0.0.1."""
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def embed_server():
    """An OpenAI-compatible endpoint with an embeddings route serving `emb-model`, on 127.0.0.1."""
    from tests.support.embed_server import EmbeddingServer

    with EmbeddingServer(models=["emb-model"]) as srv:
        yield srv


@pytest.fixture
def api(server):
    """A local OpenAI Batch API whose batches run on `server`, asking for SECRET_KEY."""
    from tests.support.batch_api import BatchAPI

    with BatchAPI(server.root_url, api_key=SECRET_KEY) as batch_api:
        yield batch_api


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


@pytest.fixture
def clean_environ(monkeypatch, tmp_path):
    """For the Python API in this process: no endpoint variables, an empty config and state directory, no auto-started vLLM."""
    for name in list(os.environ):
        if name.startswith(("MMCLI_", "OPENAI_", "PARASAIL_", "XINFERENCE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MMCLI_AUTOSTART", "0")
