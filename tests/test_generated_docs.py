"""Completions, man pages and the CLI reference are generated from the program and kept current."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmcli.cli._generate import command_tree, generated_files, stale_files

ROOT = Path(__file__).resolve().parent.parent


def test_committed_files_match_a_fresh_generation(tmp_path):
    subprocess.run([sys.executable, "-m", "mmcli.cli._generate", "--out", str(tmp_path)], check=True,
                   capture_output=True)
    assert stale_files(tmp_path) == []
    stale = stale_files(ROOT)
    assert stale == [], f"regenerate with: python -m mmcli.cli._generate (stale: {stale})"


def _man_pages() -> list[str]:
    return sorted(path for path in generated_files() if path.startswith("man/"))


@pytest.mark.parametrize("page", _man_pages())
def test_man_page_renders_without_warnings_and_lists_every_option(page):
    if shutil.which("groff") is None:
        pytest.fail("groff is not installed (.ci/run installs groff-base)")
    path = ROOT / page
    check = subprocess.run(["groff", "-man", "-ww", "-z", str(path)], capture_output=True, text=True)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    text = subprocess.run(["groff", "-man", "-Tutf8", str(path)], capture_output=True, text=True,
                          env=dict(os.environ, GROFF_NO_SGR="1")).stdout
    text = re.sub(r".\x08", "", text)  # drop overstrike bold/underline
    text = text.replace("\u2010", "-").replace("\u2212", "-").replace("\u2011", "-")
    doc = command_tree()
    commands = {"-".join(c.path): c for c in [doc] + doc.subcommands}
    command = commands[Path(page).stem]
    for sub in [command] + command.subcommands:
        for option in sub.options:
            for name in option.names:
                assert name in text, (page, name)
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES",
                    "SEE ALSO"):
        assert heading in text


def _complete(words: str, cword: int) -> list[str]:
    env = dict(os.environ, _MMCLI_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    out = subprocess.run([sys.executable, "-m", "mmcli"], env=env, capture_output=True, text=True).stdout
    return out.split()


def test_bash_completion_offers_subcommands_and_options():
    top = _complete("mmcli ", 1)
    for sub in command_tree().subcommands:
        assert sub.path[-1] in top
    assert {"--max-pixels", "--max-tokens", "--max-tokens-per-image"} <= set(_complete("mmcli ask --max", 2))


def test_completion_scripts_are_thin_shims():
    bash = (ROOT / "completions" / "mmcli.bash").read_text()
    assert "_MMCLI_COMPLETE=complete_bash" in bash and "ask" not in bash  # asks the program at TAB time


def test_defaults_read_as_the_help_shows_them():
    # An Enum default (--engine, --backend, transcribe's --format) is its value, never "EngineName.local".
    text = (ROOT / "docs" / "cli.md").read_text()
    assert not re.search(r"(EngineName|RayBackend|TranscriptFormat)\.", text)
