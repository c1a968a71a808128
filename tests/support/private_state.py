"""Keep the tests out of the user's own mmcli folders: every test gets private XDG folders (tests/conftest.py),
and `leaks` finds what a test still wrote into the real state folder about a server of this process."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote, urlsplit

XDG = ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")


def tier_cache(environ: Mapping[str, str]) -> str:
    """The vLLM tier's cache as tests/vllm_tier/tier.py finds it from the user's environment: pinned before
    XDG_CACHE_HOME is moved, so the tier keeps its built venv and models."""
    if environ.get("MMCLI_VLLM_TIER_CACHE"):
        return environ["MMCLI_VLLM_TIER_CACHE"]
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base).expanduser() / "mmcli-vllm-tier")


def _port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        return parts.port if parts.hostname == "127.0.0.1" else None
    except ValueError:
        return None


def _new_probes(folder: Path, since: float, ports: set[int]) -> list[str]:
    found = []
    for entry in os.scandir(folder):
        if not (entry.name.startswith("probe-") and entry.name.endswith(".json")):
            continue
        try:
            if entry.stat().st_mtime < since:
                continue
            base_url = json.loads(Path(entry.path).read_text(encoding="utf-8")).get("base_url", "")
        except (OSError, ValueError):
            continue  # removed or half written by another mmcli: not this test's
        if _port(base_url) in ports:
            found.append(f"{entry.path} ({base_url})")
    return found


def _new_turns(database: Path, since: float, ports: set[int]) -> list[str]:
    if not database.exists() or database.stat().st_mtime < since:
        return []
    try:
        db = sqlite3.connect(f"file:{quote(str(database.resolve()))}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT id, endpoint, prompt FROM turns WHERE created >= ?", (since,)).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []  # being written or migrated by a real mmcli: nothing to tell here
    return [f"turn {id_} at {endpoint}: {prompt[:60]!r}" for id_, endpoint, prompt in rows
            if _port(endpoint or "") in ports]


def leaks(real_state: Path, since: float, ports: Iterable[int]) -> list[str]:
    """What the real state folder gained since `since` about the servers on `ports`: probe files and history
    turns (other programs of the user may write there meanwhile: only this process's servers count)."""
    ports = set(ports)
    if not ports or not real_state.is_dir():
        return []
    return _new_probes(real_state, since, ports) + _new_turns(real_state / "history.db", since, ports)
