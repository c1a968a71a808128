"""The error boundary: usage errors, Ctrl-C, a closed stdout and --debug, on the real program."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error
from tests.support import media, pdfs
from tests.support.scripted_server import Hang

ROOT = Path(__file__).parent.parent
COMMANDS = ("ask", "video", "docqa", "detect", "serve")


def usage_error(run, *fragments: str, hint: str) -> None:
    """Exit 2, one `mmcli: error:` line, a `hint:` line, and none of Click's own usage block."""
    assert_clean_error(run, 2, *fragments)
    assert "Usage:" not in run.stderr and "Error:" not in run.stderr, run.stderr
    assert run.stderr.splitlines()[-1] == f"hint: {hint}", run.stderr
    assert len(run.stderr.splitlines()) == 2, run.stderr


@pytest.mark.parametrize("args,fragments,hint", [
    (("ask",), ("missing argument 'PROMPT'",), "see 'mmcli ask --help'"),
    (("video",), ("missing argument 'VIDEO'",), "see 'mmcli video --help'"),
    (("detect", "x.jpg"), ("missing argument 'INPUT'",), "see 'mmcli detect --help'"),
    (("docqa",), ("missing argument 'QUESTION'",), "see 'mmcli docqa --help'"),
    (("ask", "a.jpg", "q", "--bogus"), ("no such option: --bogus",), "see 'mmcli ask --help'"),
    (("ask", "a.jpg", "q", "--max-pixels", "many"), ("invalid value for '--max-pixels'",), "see 'mmcli ask --help'"),
    (("detect", "a.jpg", "q", "--format", "xml"), ("invalid value for '--format'",), "see 'mmcli detect --help'"),
    (("serve", "--port", "0"), ("invalid value for '--port'",), "see 'mmcli serve --help'"),
    (("asl",), ("no such command 'asl'", "did you mean 'ask'"), "see 'mmcli --help'"),
])
def test_usage_errors_are_one_mmcli_line_and_a_hint(mmcli, args, fragments, hint):
    usage_error(mmcli(*args), *fragments, hint=hint)


def test_bare_mmcli_shows_the_help(mmcli):
    run = mmcli()
    assert run.code == 2 and "Usage: mmcli [OPTIONS] COMMAND" in run.stderr and "ask" in run.stderr


def test_version_goes_to_stdout(mmcli):
    run = mmcli("--version")
    assert run.code == 0 and re.fullmatch(r"mmcli \S+\n", run.stdout) and run.stderr == ""


def test_debug_is_learnt_from_the_parsed_option(mmcli, tmp_path):
    missing = tmp_path / "missing.jpg"
    plain = mmcli("ask", missing, "q")
    assert_clean_error(plain, 3, "no such file")
    debug = mmcli("ask", missing, "q", "--debug")
    assert debug.code == 3 and "Traceback" in debug.stderr and "MediaError" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-2].startswith("mmcli: error: cannot read input")
    from_env = mmcli("ask", missing, "q", env={"MMCLI_DEBUG": "1"})
    assert from_env.code == 3 and "Traceback" in from_env.stderr
    # The word as the question is not the option: only a parsed --debug turns tracebacks on.
    as_prompt = mmcli("ask", missing, "--", "--debug")
    assert as_prompt.code == 3 and "Traceback" not in as_prompt.stderr


def test_debug_on_serve_is_an_option_too(mmcli, tmp_path):
    run = mmcli("serve", "stop", "--port", "9", "--debug")
    assert run.code == 2 and "Traceback" in run.stderr and "mmcli: error:" in run.stderr


def _run_into_closed_pipe(args: list[str], env: dict) -> subprocess.CompletedProcess:
    # A pipe whose reader is already gone: the first write fails with EPIPE, every time.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "mmcli", *args], stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=env, cwd=ROOT, timeout=60, text=True)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_dry_run_into_a_closed_pipe_exits_141(clean_env, tmp_path, extra):
    photo = media.make_small_png(tmp_path)
    done = _run_into_closed_pipe(["ask", str(photo), "q", "--dry-run", *extra], clean_env)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_a_dry_run_with_stdout_closed_exits_141_not_an_internal_error(clean_env, tmp_path, extra):
    # `mmcli ... >&-`: the process starts without fd 1, and Python leaves sys.stdout as None.
    photo = media.make_small_png(tmp_path)
    done = subprocess.run([sys.executable, "-m", "mmcli", "ask", str(photo), "q", "--dry-run", *extra],
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=clean_env, cwd=ROOT, timeout=60,
                          text=True, preexec_fn=lambda: os.close(1))
    assert done.returncode == 141, done.stderr
    assert "internal error" not in done.stderr


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"], ["--version"]])
def test_help_and_version_into_a_closed_pipe_exit_141(clean_env, args):
    done = _run_into_closed_pipe(args, clean_env)
    assert done.returncode == 141 and done.stderr == "", done.stderr


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
def test_docqa_plan_into_a_closed_pipe_exits_141(clean_env, tmp_path):
    doc = pdfs.text_pdf(tmp_path / "doc.pdf", 2)
    done = _run_into_closed_pipe(["docqa", str(doc), "q", "--dry-run"], clean_env)
    assert done.returncode == 141 and done.stderr == "", done.stderr


def test_dry_run_piped_into_head(clean_env, tmp_path):
    photo = media.make_small_png(tmp_path)
    script = (f"{sys.executable} -m mmcli ask {photo} q --dry-run | head -2 >/dev/null; "
              "echo ${PIPESTATUS[0]}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean_env, cwd=ROOT)
    assert out.stdout.strip() in ("0", "141"), out  # 0 when the plan fit the pipe before head left
    assert "Traceback" not in out.stderr and "error" not in out.stderr


@pytest.mark.parametrize("command", ["ask", "detect"])
def test_ctrl_c_while_waiting_prints_interrupted(server, clean_env, tmp_path, command):
    server.script(Hang(30))
    photo = media.make_small_png(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", command, str(photo), "q", "--base-url", server.base_url,
                             "-m", "qwen2.5-vl-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=clean_env, cwd=ROOT, text=True)
    deadline = time.monotonic() + 30
    while not server.chat_requests() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert server.chat_requests(), "the request never arrived"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "mmcli: interrupted", stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr


def test_help_shows_metavars_a_person_writes(mmcli):
    usage = {"ask": "mmcli ask [OPTIONS] [INPUT]... PROMPT", "video": "mmcli video [OPTIONS] VIDEO [PROMPT]",
             "docqa": "mmcli docqa [OPTIONS] [INPUT]... QUESTION", "detect": "mmcli detect [OPTIONS] INPUT... TARGET"}
    for command in COMMANDS:
        text = mmcli(command, "--help").stdout
        assert not re.search(r"<[a-z ]+(range)?>|list\[|\{[A-Z]", text), (command, text)
        if command in usage:
            assert text.splitlines()[0] == f"Usage: {usage[command]}"
    ask = mmcli("ask", "--help").stdout
    for shown in ("  INPUT...  ", "  PROMPT  ", "--profile NAME", "--timeout SECONDS", "--max-pixels N",
                  "--base-url URL", "-m, --model ID"):
        assert shown in ask, shown
    assert "--port PORT" in mmcli("serve", "--help").stdout
