"""Pure: text made safe to show on a terminal (no escape sequences, no control characters but \\n and \\t).

A model's answer, a server's error message or a file name can hold sequences a terminal obeys: set
the window title, clear the screen, move the cursor, write to the clipboard. Shown on a terminal
they are removed; written to a pipe or file the text stays exactly as it came.
"""

from __future__ import annotations

import os
import re
from typing import Callable, TextIO

# One regex, tried left to right: CSI (ESC [ or U+009B), then strings ended by BEL or ST (OSC, DCS,
# SOS, PM, APC), then other ESC sequences, then any single C0/C1 control, DEL and bare CR. Each
# sequence kind may also run to the end of the text: in a stream its end may still be on the way.
_SEQUENCE = re.compile(
    r"(?P<csi>(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*(?:[\x40-\x7e]|\Z))"
    r"|(?P<string>(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])(?:[^\x07\x1b\x9c]|\x1b(?!\\))*(?:\x07|\x1b\\|\x9c|\Z))"
    r"|(?P<esc>\x1b[\x20-\x2f]*(?:[\x30-\x7e]|\Z))"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_STRING_END = re.compile(r"(?:\x07|\x1b\\|\x9c)\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HOLD_LIMIT = 4096  # an unfinished sequence longer than this is not one: show its text


def _unfinished(match: re.Match) -> bool:
    """A sequence cut off by the end of the text (it may still end in the next piece)."""
    text = match.group()
    if match.lastgroup is None:
        return False
    if match.lastgroup == "esc":
        return len(text) == 1 or not ("\x30" <= text[-1] <= "\x7e")
    body = text[2:] if text.startswith("\x1b") else text[1:]
    if match.lastgroup == "csi":
        return not body or not ("\x40" <= body[-1] <= "\x7e")
    return _STRING_END.search(body) is None


def _split(text: str, final: bool, lone: str = "") -> tuple[str, str]:
    """(`text` cleaned, an unfinished sequence at its end to keep for the next piece); `lone` replaces
    a single control character."""
    kept: list[str] = []
    position = 0
    for match in _SEQUENCE.finditer(text):
        kept.append(text[position:match.start()])
        position = match.end()
        if match.lastgroup is None:
            kept.append(lone)
            continue
        if position == len(text) and _unfinished(match):
            if not final and len(match.group()) <= HOLD_LIMIT:
                return "".join(kept), match.group()
            # Never finished: drop the introducer, keep what it held as text (controls removed).
            intro = 2 if match.group().startswith("\x1b") else 1
            kept.append(_CONTROL.sub("", match.group()[intro:]))
    kept.append(text[position:])
    return "".join(kept), ""


def strip_controls(text: str, lone: str = "") -> str:
    """`text` without terminal escape sequences and control characters (newlines and tabs kept).

    `lone` takes the place of each single control character (a sequence goes without a trace)."""
    return _split(text.replace("\r\n", "\n"), final=True, lone=lone)[0]


class ControlFilter:
    """strip_controls for a stream of pieces: a sequence split across two pieces is still removed."""

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, piece: str) -> str:
        """The cleaned text that can be shown now."""
        text = self.pending + piece
        # A CR may be the first half of CRLF: keep it until the next piece says.
        if text.endswith("\r"):
            text, carry = text[:-1], "\r"
        else:
            carry = ""
        shown, self.pending = _split(text.replace("\r\n", "\n"), final=False)
        self.pending += carry
        return shown

    def flush(self) -> str:
        """Whatever is left at the end of the stream, cleaned."""
        text, self.pending = self.pending, ""
        return strip_controls(text)


def plain(text: object):
    """`text` as a rich Text to show on a terminal: escape sequences removed, never read as markup.

    Every table cell, bar label and console line that holds text from outside (a file name, a model id,
    a server's message) goes through here."""
    from rich.text import Text

    return Text(strip_controls(str(text)))


def for_stream(text: str, stream: TextIO) -> str:
    """`text` cleaned if `stream` is a terminal, else unchanged."""
    return strip_controls(text) if _isatty(stream) else text


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def json_for_stream(text: str, stream: TextIO) -> str:
    """JSON text with DEL and C1 characters written as \\u escapes if `stream` is a terminal (same data)."""
    if not _isatty(stream):
        return text
    # json.dumps already escapes C0; these are the ones ensure_ascii=False leaves raw, and they
    # can only occur inside strings, where an escape means the same character.
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)


def echo_off(stream) -> Callable[[], None]:
    """Stop the terminal echoing keys typed while an answer is drawn (its own "^C" would move the cursor
    under the redrawn area, which is then printed twice); returns the function that restores it."""
    try:
        import termios

        fd = stream.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    except (ImportError, OSError, ValueError, AttributeError):  # not a terminal, or no termios (Windows)
        saved = None
    if saved is None:
        return lambda: None
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)

    def restore() -> None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (OSError, termios.error):  # the terminal went away meanwhile
            pass

    return restore
