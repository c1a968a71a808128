"""What a terminal shows around a streamed answer: Ctrl-C in the middle of a Markdown line, retries under a spinner."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.scripted_server import Reply, Status
from tests.test_chat_terminal import Screen

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _command(clean_env: dict, args: str) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in clean_env.items() if k != "COLUMNS")
    root = Path(__file__).parent.parent
    return (f"cd {shlex.quote(str(root))} && env -i {env} TERM=xterm-256color {shlex.quote(sys.executable)} "
            f"-m mmcli {args}; echo EXIT=$?; stty -a | grep -o ' -echo ' ; sleep 60")


@pytest.mark.parametrize("opening", ["**bold** start", "# Title\n\nstart"])
def test_ctrl_c_in_a_long_markdown_line_shows_it_once(server, clean_env, opening):
    words = " ".join(f"w{n}" for n in range(400))  # one paragraph far wider than the terminal
    server.script(Reply(f"{opening} {words}", chunk_delay=0.05))
    screen = Screen(_command(clean_env, f"ask hello --base-url {server.base_url}"))
    try:
        screen.wait_for("w40 ")
        screen.send("C-c")
        shown = screen.wait_for("EXIT=")
    finally:
        screen.close()
    assert "EXIT=130" in shown
    assert shown.count("start w0 w1") == 1, shown  # the open line is not printed twice
    assert " -echo " not in shown  # the terminal echoes keys again afterwards


def test_a_retry_note_is_not_written_after_the_spinner(server, clean_env):
    server.script(Status(500, None), Status(500, None), Reply("fine"))  # the spinner spins during the first wait
    screen = Screen(_command(clean_env, f"ask hello --base-url {server.base_url}"))
    try:
        shown = screen.wait_for("EXIT=")
    finally:
        screen.close()
    assert "EXIT=0" in shown and "fine" in shown
    retries = [line for line in shown.splitlines() if "retrying" in line]
    assert len(retries) == 2 and all(line.startswith("mmcli: HTTP 500") for line in retries), shown
