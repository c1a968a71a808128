"""Reading the user's questions: prompt_toolkit on a terminal (line editing, a kept input history,
Esc-Enter for a new line, bracketed paste, Tab completing /attach paths), plain lines otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional, TextIO

BLOCK = '"""'
COMMANDS = ("/attach", "/drop", "/media", "/context", "/model", "/system", "/retry", "/undo", "/save",
            "/help", "/exit")


def with_blocks(read_line: Callable[[str], str]) -> Callable[[], str]:
    """A reader in which a line starting with \"\"\" opens a block that runs to a line ending with it."""
    def read() -> str:
        first = read_line("> ")
        stripped = first.strip()
        if not stripped.startswith(BLOCK):
            return first
        body = stripped[len(BLOCK):]
        if body.endswith(BLOCK):  # """all on one line"""
            return body[: -len(BLOCK)]
        lines = [body] if body else []
        while True:
            line = read_line("… ").rstrip()
            if line.endswith(BLOCK):
                lines.append(line[: -len(BLOCK)])
                return "\n".join(lines).strip("\n")
            lines.append(line)

    return read


def plain_reader(stream: TextIO = sys.stdin) -> Callable[[], str]:
    """Questions from a pipe or file, one a line (EOFError at the end)."""
    raw = getattr(stream, "buffer", None)  # bytes, so a line that is not UTF-8 is refused, not fatal

    def read_line(prompt: str) -> str:
        line = raw.readline().decode("utf-8", "surrogateescape") if raw is not None else stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    return with_blocks(read_line)


def terminal_reader(history_file: Optional[Path]) -> Callable[[], str]:
    """prompt_toolkit's line editor; the input history is kept in `history_file` (None: this session only)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _new_line(event) -> None:
        event.current_buffer.insert_text("\n")

    history = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(history_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            history = FileHistory(str(history_file))
        except OSError:
            pass  # an unwritable state folder costs the kept history, not the chat
    session = PromptSession(history=history, key_bindings=bindings, completer=_completer(),
                            complete_while_typing=False)
    return with_blocks(lambda prompt: session.prompt(prompt))


def _completer():
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document

    paths = PathCompleter(expanduser=True)

    class ChatCompleter(Completer):
        """Slash commands, and paths after /attach."""

        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            if text.startswith("/attach "):
                word = text.split(" ")[-1]
                yield from paths.get_completions(Document(word, len(word)), complete_event)
            elif text.startswith("/") and " " not in text:
                for name in COMMANDS:
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text))

    return ChatCompleter()


def reader_for(stdin: TextIO, stdout: TextIO, history_file: Optional[Path]) -> Callable[[], str]:
    """The line editor when both ends are a terminal, else plain lines."""
    if stdin.isatty() and stdout.isatty():
        return terminal_reader(history_file)
    return plain_reader(stdin)
