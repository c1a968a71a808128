"""Streamed Markdown cut into blocks: finished blocks once, fenced code never cut, any piece size."""

from __future__ import annotations

import io

import pytest

from mmcli.cli.output.markdown_blocks import BlockMarkdown, BlockSplitter

DOC = ("# Title\n\nA paragraph\nover two lines.\n\n```python\nx = 1\n\n\ny = 2\n```\nAfter the code.\n\n"
       "- one\n- two\n\n~~~\n```\nnot a fence end\n~~~\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_blocks_are_the_same_whatever_the_pieces(size):
    splitter = BlockSplitter()
    blocks = []
    for i in range(0, len(DOC), size):
        blocks += splitter.feed(DOC[i:i + size])
    blocks.append(splitter.rest())
    assert "".join(blocks) == DOC  # nothing lost, nothing twice
    assert blocks[:3] == ["# Title\n\n", "A paragraph\nover two lines.\n\n", "```python\nx = 1\n\n\ny = 2\n```\n"]
    assert "~~~\n```\nnot a fence end\n~~~\n" in blocks  # a ``` inside a ~~~ block does not close it
    assert blocks[-1] == "| a | b |\n|---|---|\n| 1 | 2 |\n"  # the open block until the text is over


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_sink_shows_every_block_and_no_control_sequences():
    screen = Terminal()
    sink = BlockMarkdown(screen, clock=lambda: 0.0)  # the clock never moves: only finished blocks redraw
    for piece in ["Hello \x1b]0;owned\x07wor", "ld\n\nSecond ", "block.\n"]:
        sink.write(piece)
    sink.close()
    shown = screen.getvalue()
    assert "Hello world" in shown and "Second block." in shown
    assert "owned" not in shown and "\x1b]" not in shown
