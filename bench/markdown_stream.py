"""Streamed Markdown: block-wise rendering against re-rendering the whole buffer per piece, side by side.

    python bench/markdown_stream.py [--lines 2000] [--piece 64]

A 2,000-line answer (paragraphs, lists, code blocks, tables) arrives in pieces of --piece characters,
as a server streams it, and is shown on a pretend 100x40 terminal. The reference parses and renders
the whole text so far on every piece (what a live Markdown view that re-renders its buffer does); the
block-wise sink renders each finished block once and redraws the open block at most 15 times a second.
Prints CPU seconds of each and the ratio. Target: at least 10x less CPU.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal, so rich draws as it would on screen."""

    def isatty(self) -> bool:
        return True


def make_answer(lines: int) -> str:
    """A long Markdown answer with the usual blocks, `lines` lines in all."""
    out: list[str] = []
    n = 0
    while len(out) < lines:
        n += 1
        out += [f"## Section {n}", "", f"Paragraph {n} talks about **the image** and its `details`, "
                "with a [link](https://example.com) and some *emphasis* spread over a long line.", ""]
        out += [f"- point {n}.{k}: the object on the {'left' if k % 2 else 'right'}" for k in range(4)] + [""]
        out += ["```python", *[f"value_{n}_{k} = compute({k}) * {n}" for k in range(5)], "```", ""]
        out += ["| item | count |", "|------|-------|", *[f"| thing {k} | {k * n} |" for k in range(3)], ""]
    return "\n".join(out[:lines]) + "\n"


def pieces(text: str, size: int) -> list[str]:
    """The text cut into pieces of `size` characters, as a stream delivers it."""
    return [text[i:i + size] for i in range(0, len(text), size)]


def whole_buffer(chunks: list[str]) -> None:
    """The reference: every piece re-parses and re-renders all the text so far."""
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console(file=FakeTerminal(), width=100, height=40)
    text = ""
    for chunk in chunks:
        text += chunk
        console.render_lines(Markdown(text), console.options, pad=False)
    console.print(Markdown(text))


def block_wise(chunks: list[str]) -> None:
    """mmcli's sink: finished blocks rendered once, the open block redrawn at most 15 times a second."""
    from mmcli.cli.output.markdown_blocks import BlockMarkdown

    sink = BlockMarkdown(FakeTerminal())
    sink.console.width, sink.console.height = 100, 40
    for chunk in chunks:
        sink.write(chunk)
    sink.close()


def cpu_seconds(fn, *args) -> float:
    """CPU time of one call."""
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


def main() -> None:
    """Run both on the same answer and print the two CPU times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--piece", type=int, default=64, help="characters per streamed piece")
    args = parser.parse_args()
    from rich.console import Console  # imports are not what is measured
    from rich.markdown import Markdown

    Console(file=FakeTerminal()).print(Markdown("# warm-up\n\n- a\n\n```\nx\n```\n"))
    answer = make_answer(args.lines)
    chunks = pieces(answer, args.piece)
    print(f"answer: {args.lines:,} lines, {len(answer):,} characters, {len(chunks):,} pieces")
    blocks = cpu_seconds(block_wise, chunks)
    print(f"block-wise       : {blocks:8.2f} s CPU")
    whole = cpu_seconds(whole_buffer, chunks)
    print(f"whole buffer     : {whole:8.2f} s CPU")
    print(f"ratio            : {whole / blocks:8.1f}x less CPU block-wise (target >= 10x)")


if __name__ == "__main__":
    main()
