"""The test suite never writes the user's own history, probes or server state (tests/conftest.py's private_xdg)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REAL_STATE
from tests.support.private_state import leaks


def _prompts(database: Path) -> list[str]:
    if not database.exists():
        return []
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return [row[0] for row in db.execute("SELECT prompt FROM turns")]
    finally:
        db.close()


def test_a_client_without_clean_environ_leaves_the_real_history_untouched(server):
    import mmcli

    prompt = f"private-state check {uuid.uuid4().hex}"
    since = time.time()
    mmcli.Client(base_url=server.base_url, model="m", autostart=False).ask([], prompt)

    private = Path(os.environ["XDG_STATE_HOME"]) / "mmcli"
    assert prompt in _prompts(private / "history.db")  # logged, in the test's own folder
    assert prompt not in _prompts(REAL_STATE / "history.db")
    assert not leaks(REAL_STATE, since, {server.port})  # and no probe of this server beside it (ports recur)


def test_a_child_process_gets_the_private_folders_too():
    import subprocess
    import sys

    code = "import os, json; print(json.dumps({k: os.environ.get(k) for k in ('XDG_STATE_HOME', 'XDG_CACHE_HOME')}))"
    seen = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert seen == {"XDG_STATE_HOME": os.environ["XDG_STATE_HOME"], "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
    assert Path(seen["XDG_STATE_HOME"]) / "mmcli" != REAL_STATE


def test_the_guard_names_a_probe_and_a_turn_about_a_served_port_and_nothing_else(tmp_path):
    since = time.time() - 1
    (tmp_path / "probe-1.json").write_text(json.dumps({"base_url": "http://127.0.0.1:4242/v1"}))
    (tmp_path / "probe-2.json").write_text(json.dumps({"base_url": "http://127.0.0.1:5353/v1"}))  # someone else's
    db = sqlite3.connect(tmp_path / "history.db")
    db.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, created REAL, endpoint TEXT, prompt TEXT)")
    db.executemany("INSERT INTO turns (created, endpoint, prompt) VALUES (?, ?, ?)",
                   [(time.time(), "http://127.0.0.1:4242/v1", "leaked"), (time.time(), "http://127.0.0.1:5353/v1", "own"),
                    (since - 100, "http://127.0.0.1:4242/v1", "long ago")])
    db.commit()
    db.close()
    found = leaks(tmp_path, since, {4242})
    assert len(found) == 2 and "probe-1.json" in found[0] and "'leaked'" in found[1]
    assert leaks(tmp_path, since, {9999}) == []


@pytest.fixture(scope="module")
def module_level_xdg():
    """What a module-scoped fixture (set up before any test's own folders) sees."""
    return {name: os.environ.get(name) for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME")}


def test_module_fixtures_get_private_folders_too(module_level_xdg):
    assert module_level_xdg["XDG_STATE_HOME"] and Path(module_level_xdg["XDG_STATE_HOME"]) / "mmcli" != REAL_STATE
    assert module_level_xdg["XDG_CONFIG_HOME"]
