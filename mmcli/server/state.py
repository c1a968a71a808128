"""The state folder of `mmcli serve`: what it records about the server it started (server.json), the
pid, log and API key files, and `running_server`, how clients find that server."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping, Optional

from .defaults import VLLM_DEFAULT_NUM_FRAMES
from .process import pid_alive

STATE_FILE = "server.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
KEY_FILE = "api-key"


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
    # How many frames of a frame list the server keeps (None: all). The default is for a record
    # written before this field existed: such a server ran with vLLM's own cap.
    frame_limit: Optional[int] = VLLM_DEFAULT_NUM_FRAMES
    # Whether requests may carry media_io_kwargs (vLLM's --trust-request-mm-kwargs), e.g. the real
    # timing of the frames sent.
    request_mm_kwargs: bool = False
    # The most visual tokens one video may take (the server's encoder cache); None: not known.
    video_item_tokens: Optional[int] = None


def serves(state: ServerState, spec: str) -> bool:
    """Whether `spec` (a model as a client names it: served name, alias, hub id or folder) is the
    model this server loaded, so the client can ask for it under the served name."""
    if spec in (state.model, state.source):
        return True
    from ..families import serve_alias

    alias = serve_alias(spec)
    if alias is not None and alias.hf_id == state.source:
        return True
    try:
        return Path(spec).expanduser().resolve() == Path(state.source)
    except (OSError, RuntimeError, ValueError):
        return False


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
    from ..files import write_atomic

    write_atomic(path, text.encode("utf-8"), force=True, mode=mode)


def save_state(directory: Path, state: ServerState) -> None:
    """Record the server (state JSON and pid file)."""
    _write_atomic(directory / STATE_FILE, json.dumps(asdict(state), indent=1) + "\n")
    _write_atomic(directory / PID_FILE, f"{state.pid}\n")


def load_state(environ: Mapping[str, str]) -> Optional[ServerState]:
    """The recorded server, alive or not; None when there is no (readable) record."""
    try:
        data = json.loads((state_dir(environ) / STATE_FILE).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(ServerState)}
        # Unknown keys are ignored, so a record written by a newer mmcli still finds its server.
        return ServerState(**{k: v for k, v in data.items() if k in known})
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
