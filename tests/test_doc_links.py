"""The README and the pages in docs/: every link resolves (files and #anchors), the README stays short
and shows every command, and each page opens with runnable examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Pages other parts of the project write; linked from here already, checked like the rest once present.
PAGES_TO_COME: set[str] = set()
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """The anchor a Markdown heading gets (GitHub's rule: lower case, punctuation dropped, spaces to -)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"^#{1,6} ", line)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(page):
    for target in links(page):
        if re.match(r"^[a-z]+:", target):
            continue  # a URL: not checked offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        relative = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
        if not resolved.exists():
            assert relative in PAGES_TO_COME, f"{page.name}: broken link {target}"
            continue
        if anchor:
            assert resolved.suffix == ".md", f"{page.name}: anchor into a non-Markdown file: {target}"
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor} in {relative}"


def test_the_readme_is_short_and_shows_every_command():
    from mmcli.cli.app import app

    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    examples = [line.strip() for line in text.splitlines() if line.startswith("    mmcli ")]
    for name in [info.name for info in app.registered_commands] + ["batch"]:
        assert any(line.startswith(f"mmcli {name}") or f" mmcli {name} " in line for line in examples), name
    # The set-up-and-ask pair and the test command stay in the quick start.
    assert "    pip install -e .\n    mmcli ask photo.jpg \"what's here\"\n" in text
    assert "    pip install -e '.[test]' && python -m pytest\n" in text


@pytest.mark.parametrize("page", [p for p in PAGES if p.parent.name == "docs" and p.name != "cli.md"],
                         ids=lambda p: p.name)
def test_each_page_opens_with_runnable_examples(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    opening = [line for line in lines[1:12] if line.strip()]
    assert opening and (opening[0].startswith("    ") or opening[0].startswith("```")), page.name
