"""The in-process runner behind the `mmcli` fixture: isolated like a process, and giving what one gives."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import signal
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error
from tests.support import media
from tests.support.inprocess import PROCESS_CACHES, RunTimedOut, run_in_process
from tests.support.scripted_server import Hang, Reply

ROOT = Path(__file__).parent.parent


def _module_caches() -> set[tuple[str, str]]:
    # Module-level names bound to an empty container: the shape of a cache that outlives one command.
    found = set()
    for path in sorted((ROOT / "mmcli").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            empty = ((isinstance(value, ast.Dict) and not value.keys)
                     or (isinstance(value, (ast.List, ast.Set)) and not value.elts))
            made = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id in ("dict", "list", "set", "defaultdict", "OrderedDict")
                    and not value.args and not value.keywords) or (
                    isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "defaultdict")
            if empty or made:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found.update((module, t.id) for t in targets if isinstance(t, ast.Name))
            if isinstance(node, ast.FunctionDef) and any("cache" in ast.unparse(d) for d in node.decorator_list):
                found.add((module, node.name))
    return found


def test_every_process_cache_is_emptied_between_runs():
    # A new cache that the runner does not know would carry one test's endpoint into the next.
    # (A listed cache whose module is gone is skipped by the runner.)
    assert _module_caches() <= set(PROCESS_CACHES)


def _snapshot() -> tuple:
    return (dict(os.environ), os.getcwd(), sys.argv, sys.stdin, sys.stdout, sys.stderr,
            {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)},
            list(warnings.filters), logging.getLogger().handlers[:], logging.getLogger().level)


def test_a_run_leaves_the_test_process_as_it_found_it(clean_env, server, tmp_path):
    before = _snapshot()
    server.script(Reply("a cat"))
    env = dict(clean_env, MMCLI_MODEL="qwen2.5-vl-test", MMCLI_BASE_URL=server.base_url)
    code, out, _ = run_in_process(["ask", str(media.make_small_png(tmp_path)), "q"], env, cwd=tmp_path)
    assert (code, out) == (0, b"a cat\n")
    assert _snapshot() == before
    for module, name in PROCESS_CACHES:
        assert not getattr(sys.modules.get(module), name, None), (module, name)


def test_the_environment_is_the_one_given_and_nothing_else(mmcli, server, tmp_path, monkeypatch):
    # The test process's own endpoint variables do not reach the command.
    monkeypatch.setenv("MMCLI_BASE_URL", "http://127.0.0.1:9/v1")
    photo = media.make_small_png(tmp_path)
    server.script(Reply("from the given endpoint"))
    run = mmcli("ask", photo, "q", env={"MMCLI_BASE_URL": server.base_url})
    assert run.code == 0 and run.stdout == "from the given endpoint\n", run.output
    # and what one run was given is gone in the next
    assert_clean_error(mmcli("ask", photo, "q", env={"MMCLI_BASE_URL": "http://127.0.0.1:9/v1"}), 5)


def test_a_cached_context_length_does_not_outlive_its_run(mmcli_inprocess, mmcli_process, server, tmp_path):
    # The same endpoint shrinks its context between two commands: each runner must see what a new
    # process sees (a process-lifetime cache kept by the test process would hide the change).
    photo = media.make_small_png(tmp_path)
    outcomes = []
    for name, runner in (("inside", mmcli_inprocess), ("outside", mmcli_process)):
        env = {"XDG_STATE_HOME": str(tmp_path / name)}
        codes = []
        for limit in (100000, 50):
            server.max_model_len = limit
            server.script(Reply("fits"))
            codes.append(runner("ask", photo, "q", "--base-url", server.base_url, env=env).code)
        outcomes.append(codes)
    assert outcomes[0] == outcomes[1]


def test_stdin_bytes_reach_the_command(mmcli, server, tmp_path):
    server.script(Reply("seen"))
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", "-", "q", "--base-url", server.base_url, stdin=photo.read_bytes())
    assert run.code == 0 and run.stdout == "seen\n", run.output
    assert_clean_error(mmcli("ask", "-", "q", "--base-url", server.base_url), 3, "empty")


def test_a_terminal_stdout_is_cleaned_of_control_sequences(mmcli_inprocess, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    server.script(Reply("red \x1b[31mtext\x1b[0m"), Reply("red \x1b[31mtext\x1b[0m"))
    piped = mmcli_inprocess("ask", photo, "q", "--base-url", server.base_url)
    shown = mmcli_inprocess("ask", photo, "q", "--base-url", server.base_url, stdout_tty=True)
    assert "\x1b[31m" in piped.stdout, piped.output
    # on a terminal the answer is drawn live, and the server's own sequence is removed from it
    assert "\x1b[31m" not in shown.stdout and "red text" in shown.stdout, shown.output


def test_a_command_that_hangs_is_stopped_at_its_timeout(clean_env, server, tmp_path):
    server.script(Hang(30))
    args = ["ask", str(media.make_small_png(tmp_path)), "q", "--base-url", server.base_url, "--timeout", "60"]
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(RunTimedOut):
        run_in_process(args, clean_env, cwd=tmp_path, timeout=1)
    assert signal.getsignal(signal.SIGALRM) == before


def _same(text: str, tmp_path: Path) -> str:
    # What differs between two runs of one command: the temporary folder, durations and ports.
    text = text.replace(str(tmp_path), "TMP")
    text = re.sub(r"\d+(\.\d+)? ?(ms|s)\b", "T", text)
    return re.sub(r"127\.0\.0\.1:\d+", "HOST", text)


SAMPLE = [
    ["--help"],
    ["--version"],
    ["ask", "--help"],
    [],
    ["ask"],
    ["frobnicate"],
    ["ask", "PHOTO", "q", "--dry-run", "--model", "qwen2.5-vl-test"],
    ["ask", "PHOTO", "q", "--family", "nope", "--base-url", "URL"],
    ["ask", "MISSING", "q", "--base-url", "URL"],
    ["detect", "PHOTO", "dog", "--dry-run", "--model", "qwen2.5-vl-test"],
    ["ask", "PHOTO", "q", "--json", "--base-url", "URL"],
    ["ask", "PHOTO", "q", "--base-url", "http://127.0.0.1:9/v1"],
]


@pytest.mark.parametrize("args", SAMPLE, ids=lambda a: " ".join(a)[:40] or "bare")
def test_in_process_and_a_real_process_say_the_same(mmcli_inprocess, mmcli_process, server, tmp_path, args):
    photo = media.make_small_png(tmp_path)
    argv = [str(photo) if a == "PHOTO" else str(tmp_path / "nope.png") if a == "MISSING"
            else server.base_url if a == "URL" else a for a in args]
    runs = []
    for runner in (mmcli_inprocess, mmcli_process):
        server.script(Reply("a grey square"))
        runs.append(runner(*argv))
    inside, outside = runs
    assert inside.code == outside.code, (inside, outside)
    if "--json" in args:
        a, b = json.loads(inside.stdout), json.loads(outside.stdout)
        for record in (a, b):
            record.pop("timing", None)
            record.pop("seconds", None)
        assert a.keys() == b.keys() and a.get("answer") == b.get("answer")
    else:
        assert _same(inside.stdout, tmp_path) == _same(outside.stdout, tmp_path)
    assert _same(inside.stderr, tmp_path) == _same(outside.stderr, tmp_path)
