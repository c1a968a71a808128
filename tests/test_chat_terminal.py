"""`mmcli chat` on a real terminal (tmux): typing, attaching mid-chat, Ctrl-C mid-answer, /context, Ctrl-D."""

from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import media
from tests.support.scripted_server import Reply

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WAIT = 60.0  # seconds to wait for something to show on the screen (never an assertion on speed)


class Screen:
    """A tmux session running one command on a 120x40 terminal."""

    def __init__(self, command: str) -> None:
        self.name = f"mmcli-chat-{uuid.uuid4().hex[:8]}"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", command],
                       check=True)

    def text(self) -> str:
        """What the terminal shows, with its scroll-back."""
        return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-S", "-500", "-t", self.name],
                              capture_output=True, text=True).stdout

    def send(self, *keys: str) -> None:
        """Keys as tmux names them (Enter, C-c, C-d) or literal text."""
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        """Literal text, then Enter."""
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)
        self.send("Enter")

    def wait_for(self, needle: str, count: int = 1) -> str:
        """Wait until `needle` shows `count` times; the screen then."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            screen = self.text()
            if screen.count(needle) >= count:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} never showed; the screen:\n{self.text()}")

    def leave(self) -> str:
        """Ctrl-D at the prompt, until the command's exit shows; the screen then. A Ctrl-D that reaches the
        terminal between two prompts (its line discipline in cooked mode, not the prompt's raw mode) is an
        end-of-file nobody reads: the key is sent again, as a user would press it again."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.send("C-d")
            for _ in range(30):
                screen = self.text()
                if "EXIT=" in screen:
                    return screen
                time.sleep(0.1)
        raise AssertionError(f"Ctrl-D never ended the chat; the screen:\n{self.text()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_chat_on_a_terminal(server, clean_env, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    other = media.make_real_photo(tmp_path / "in", "other.jpg")
    story = " ".join(f"word{n}" for n in range(400))
    server.script(Reply("The **first** answer."), Reply(story, chunk_delay=0.05), Reply("After the stop."))
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in clean_env.items() if k != "COLUMNS")
    root = Path(__file__).parent.parent
    command = (f"cd {shlex.quote(str(root))} && env -i {env} TERM=xterm-256color {shlex.quote(sys.executable)} "
               f"-m mmcli chat {shlex.quote(str(photo))} --base-url {server.base_url}; echo EXIT=$?; sleep 60")
    screen = Screen(command)
    try:
        screen.wait_for("Ctrl-D leaves")
        screen.type("what is here?")
        screen.wait_for("first answer.")
        screen.type(f"/attach {other}")
        screen.wait_for("goes with the next question")
        screen.type("tell me a long story")
        screen.wait_for("word20")
        screen.send("C-c")
        screen.wait_for("answer stopped")
        screen.type("and now?")
        screen.wait_for("After the stop.")
        screen.type("/context")
        shown = screen.wait_for("tokens used")
        assert "visual tokens (planned exactly)" in shown
        shown = screen.leave()
        assert "EXIT=0" in shown and "Traceback" not in shown
    finally:
        screen.close()
    first, second, third = (r.json["messages"] for r in server.chat_requests())
    assert [p["type"] for p in second[-1]["content"]] == ["image_url", "text"]  # attached mid-chat
    assert json.dumps(third[:3]) == json.dumps(second[:3])  # earlier turns unchanged
    partial = third[3]["content"]
    assert third[3]["role"] == "assistant" and partial.startswith("word0 word1") and "word399" not in partial
    assert third[4]["content"] == "and now?"
    con = sqlite3.connect(tmp_path / "state" / "mmcli" / "history.db")
    statuses = [row[0] for row in con.execute("SELECT status FROM turns ORDER BY id")]
    assert statuses == ["ok", "interrupted", "ok"]
