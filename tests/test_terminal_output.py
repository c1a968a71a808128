"""Hostile text never drives the user's terminal: escape sequences and control characters are removed from
what is shown on a terminal (answers, status and error lines, tables); a pipe gets the answer byte for byte."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mmcli.cli.output.render import Output
from mmcli.terminal import ControlFilter, strip_controls
from tests.support import media
from tests.support.scripted_server import Reply, Status, vllm_error

ROOT = Path(__file__).parent.parent
# Window title (split across stream chunks at its space), clear screen, a DCS string, C1 CSI and OSC,
# a bare CR that would overwrite the line, backspaces, a bell.
HOSTILE = ("Safe start \x1b]0;PWNED TITLE\x07then \x1b[2J\x1b[1;1Hcleared \x1bP1$r DCS\x1b\\ c1 \u009b2J "
           "\u009d0;PWNED2\u009c over\rwrite bs\x08\x08\x08 bell\x07 tab\there\nline two\r\n")
BAD_BYTES = [b"PWNED", b"\x1b]", b"\x1b[2J", b"\x1b[1;1H", b"\x1bP", b"\xc2\x9b", b"\xc2\x9d", b"\x08", b"\x07",
             b"over\rwrite"]


class Terminal:
    """A pseudo-terminal whose output is collected until it closes."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.seen = bytearray()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            self.seen.extend(chunk)

    def close(self) -> bytes:
        """Stop writing to it and return everything it received."""
        os.close(self.slave)
        self.reader.join(timeout=10)
        os.close(self.master)
        return bytes(self.seen)


def _run_on_terminals(args: list[str], env: dict) -> tuple[int, bytes, bytes]:
    out, err = Terminal(), Terminal()
    try:
        proc = subprocess.run([sys.executable, "-m", "mmcli", *args], stdin=subprocess.DEVNULL, stdout=out.slave,
                              stderr=err.slave, env=env, timeout=60, cwd=ROOT, check=False)
    finally:
        shown_out, shown_err = out.close(), err.close()
    return proc.returncode, shown_out, shown_err


def _assert_harmless(shown: bytes) -> None:
    for bad in BAD_BYTES:
        assert bad not in shown, (bad, shown)


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_an_answer_on_a_terminal_loses_its_control_sequences(server, clean_env, tmp_path, stream):
    photo = media.make_small_png(tmp_path)
    server.script(Reply(HOSTILE))
    code, shown, _ = _run_on_terminals(["ask", str(photo), "q", "--base-url", server.base_url, stream],
                                       dict(clean_env, TERM="xterm-256color"))
    assert code == 0
    _assert_harmless(shown)
    text = shown.decode("utf-8", "replace")
    for kept in ("Safe start", "then", "cleared", "overwrite", "tab", "line two"):
        assert kept in text, (kept, text)


def test_an_answer_in_a_pipe_stays_byte_exact(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    server.script(Reply(HOSTILE))
    run = mmcli("ask", photo, "q", "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    assert run.stdout == HOSTILE


def test_an_error_line_from_a_hostile_server_is_cleaned_on_a_terminal(server, clean_env, tmp_path):
    photo = media.make_small_png(tmp_path)
    server.script(Status(400, vllm_error(400, "bad \x1b]0;PWNED\x07request\x1b[2J here")))
    code, _, shown = _run_on_terminals(["ask", str(photo), "q", "--base-url", server.base_url],
                                       dict(clean_env, TERM="xterm-256color"))
    assert code == 4
    _assert_harmless(shown)
    assert b"mmcli: error:" in shown and b"bad request here" in shown


def test_the_detect_table_on_a_terminal_shows_labels_as_plain_text(server, clean_env, tmp_path):
    photo = media.make_small_png(tmp_path)
    label = "cat\x1b]0;PWNED\x07 [bold]x\x1b[2J"
    server.script(Reply(json.dumps([{"bbox_2d": [1, 2, 30, 40], "label": label}])))
    code, shown, _ = _run_on_terminals(["detect", str(photo), "cats", "--base-url", server.base_url],
                                       dict(clean_env, TERM="xterm-256color"))
    assert code == 0
    _assert_harmless(shown)
    assert b"[bold]x" in shown  # shown as written, not read as markup


def _terminal_output() -> tuple[Output, Terminal, io.TextIOWrapper]:
    screen = Terminal()
    stream = io.TextIOWrapper(io.FileIO(os.dup(screen.slave), "w"), encoding="utf-8", write_through=True)
    return Output(stdout=stream, stderr=stream), screen, stream


def test_output_lines_status_warnings_and_json_are_cleaned_on_a_terminal():
    out, screen, stream = _terminal_output()
    out.line("answer \x1b]0;PWNED\x07text\ttab")
    out.status("reading \x1b[2Jfile\u009b2J.png")
    out.warn("odd\x08\x08 name")
    out.emit_json({"raw": "c1 \u009d0;TITLE\u009c and \x1b[2J"})
    stream.close()
    shown = screen.close()
    _assert_harmless(shown)
    text = shown.decode("utf-8")
    assert "answer text\ttab" in text and "mmcli: reading file.png" in text and "odd name" in text
    # JSON stays the same data: C1 characters are written as \u escapes, ESC as JSON always writes it.
    assert '"raw": "c1 \\u009d0;TITLE\\u009c and \\u001b[2J"' in text


def test_output_to_a_pipe_is_written_as_it_came():
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(stdout=stdout, stderr=stderr)
    out.line("a\x1b]0;t\x07b")
    out.status("s\x1b[2J")
    out.emit_json({"raw": "\u009b"})
    assert stdout.getvalue() == 'a\x1b]0;t\x07b\n{\n  "raw": "\u009b"\n}\n'
    assert stderr.getvalue() == "mmcli: s\x1b[2J\n"


@pytest.mark.parametrize("text, shown", [
    ("title \x1b]0;PWNED\x07done", "title done"),
    ("title \x1b]2;x\x1b\\done", "title done"),
    ("\x1b[38;5;196mred\x1b[0m", "red"),
    ("\x1b[?1049h alt screen", " alt screen"),
    ("keypad \x1b= \x1b(0 charset", "keypad   charset"),
    ("apc \x1b_payload\x1b\\ pm \x1b^x\x07 sos \x1bXy\x9c end", "apc  pm  sos  end"),
    ("c1 \u0085 \u0090dcs\u009c \u009b31m", "c1   "),
    ("keep\ttabs\nand lines\r\n", "keep\ttabs\nand lines\n"),
    ("cr\rover", "crover"),
    ("unicode é 中 ✓", "unicode é 中 ✓"),
    ("never ended \x1b]0;rest of text", "never ended 0;rest of text"),
])
def test_strip_controls(text, shown):
    assert strip_controls(text) == shown


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_a_sequence_split_across_pieces_is_still_removed(size):
    text = "a\x1b]0;PWNED\x07b\x1b[2Jc\r\nd\x1bP+q\x1b\\e\u009b1mf\r"
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    stream = ControlFilter()
    shown = "".join(stream.feed(piece) for piece in pieces) + stream.flush()
    assert shown == "ab" + "c\nd" + "ef"
