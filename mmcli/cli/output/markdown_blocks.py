"""Streamed Markdown shown block by block: each finished block is rendered once and printed; only the
open block is redrawn, at most REDRAWS_PER_SECOND times, so a long answer costs linear time, not quadratic."""

from __future__ import annotations

import re
import sys
import time
from typing import Optional, TextIO

from mmcli.terminal import ControlFilter, echo_off

REDRAWS_PER_SECOND = 15
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class BlockSplitter:
    """Cuts a growing Markdown text into finished blocks: at a blank line outside a fenced code block,
    and after a fence closes. What is left is the open block."""

    def __init__(self) -> None:
        self.open = ""
        self._line_start = 0  # where the first line not yet looked at begins, in `open`
        self._fence: Optional[str] = None  # the fence that opened the code block we are in

    def feed(self, text: str) -> list[str]:
        """Add text; the blocks it finished, in order."""
        self.open += text
        done = []
        while True:
            end = self.open.find("\n", self._line_start)
            if end < 0:
                return done
            line = self.open[self._line_start:end]
            self._line_start = end + 1
            if self._ends_block(line):  # (blank lines between blocks come out as blocks of their own)
                done.append(self.open[:self._line_start])
                self.open = self.open[self._line_start:]
                self._line_start = 0

    def _ends_block(self, line: str) -> bool:
        fence = _FENCE.match(line)
        if self._fence is not None:
            if fence and fence.group(1)[0] == self._fence[0] and len(fence.group(1)) >= len(self._fence) \
                    and not line.strip().strip(self._fence[0]):
                self._fence = None
                return True
            return False
        if fence:
            self._fence = fence.group(1)
            return False
        return not line.strip()

    def rest(self) -> str:
        """The open block, taken away (the text is over)."""
        rest, self.open, self._line_start, self._fence = self.open, "", 0, None
        return rest


class _Tail:
    """Only the last screenful of a renderable, so an open block longer than the screen scrolls."""

    def __init__(self, inner, height: int) -> None:
        self.inner = inner
        self.height = max(1, height)

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        lines = console.render_lines(self.inner, options, pad=False)
        for line in lines[-self.height:]:
            yield from line
            yield Segment.line()


MARKDOWN_SYNTAX = re.compile(r"(?m)^ {0,3}(?:#{1,6}\s|[-*+]\s|\d{1,9}[.)]\s|>|```|~~~|\||[-=*_]{3,}\s*$)"
                       r"|\*\*|__|`|\[[^\]\n]*\]\(|(?<![\w*])\*[^\s*][^*\n]*\*(?![\w*])")


class BlockMarkdown:
    """An answer sink for a terminal: Markdown with no control sequences, rendered block by block."""

    def __init__(self, stream: TextIO, clock=time.monotonic) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        self.filter = ControlFilter()
        self.blocks = BlockSplitter()
        self.clock = clock
        self.drawn_at = float("-inf")
        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.restore_echo = echo_off(sys.stdin)
        self.live.start()
        self.markdown = False  # set once the answer shows Markdown syntax; plain prose stays plain text

    def _shown(self, text: str):
        """Markdown once the answer has shown its syntax, plain text until then (rich's Markdown is not loaded)."""
        self.markdown = self.markdown or bool(MARKDOWN_SYNTAX.search(text))
        if not self.markdown:
            from rich.text import Text

            return Text(text)
        from rich.markdown import Markdown

        return Markdown(text)

    def write(self, delta: str) -> None:
        """Show one more piece of the answer."""
        finished = self.blocks.feed(self.filter.feed(delta))
        for block in finished:
            if block.strip():
                self.console.print(self._shown(block))  # printed above the live area, once
        now = self.clock()
        if finished or now - self.drawn_at >= 1 / REDRAWS_PER_SECOND:
            self._draw()
            self.drawn_at = now

    def _draw(self) -> None:
        self.live.update(_Tail(self._shown(self.blocks.open), self.console.size.height - 1), refresh=True)

    def close(self) -> None:
        """The answer is over (whole or not): the open block is printed, the live area goes."""
        self.live.update("", refresh=True)
        self.live.stop()
        self.restore_echo()
        for block in self.blocks.feed(self.filter.flush()) + [self.blocks.rest()]:
            if block.strip():
                self.console.print(self._shown(block))
