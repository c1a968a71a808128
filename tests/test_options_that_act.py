"""transcribe, embed and search show only the shared options that act on them, with help that fits."""

from __future__ import annotations

import pytest

from mmcli.cli._generate import command_tree
from tests.conftest import assert_clean_error

CHAT_ONLY = ["--system", "--max-tokens", "--temperature", "--stream", "--no-stream", "--verify"]
IMAGE_ONLY = ["--family", "--max-pixels", "--min-pixels", "--max-tokens-per-image", "--lossless", "--pass-url"]


def options_of(name: str) -> dict[str, str]:
    """{option name: its help} of `mmcli NAME`."""
    (command,) = [c for c in command_tree().subcommands if c.path[-1] == name]
    return {n: o.help for o in command.options for n in o.names}


@pytest.mark.parametrize("command, absent", [
    ("transcribe", CHAT_ONLY + IMAGE_ONLY),
    ("embed", CHAT_ONLY),
    ("search", CHAT_ONLY),
])
def test_options_that_do_not_act_are_not_offered(command, absent):
    offered = options_of(command)
    assert not set(absent) & set(offered), sorted(set(absent) & set(offered))
    for acting in ("--base-url", "--model", "--timeout", "--json", "--dry-run", "--debug"):
        assert acting in offered
    if command != "transcribe":
        assert set(IMAGE_ONLY) <= set(offered)  # the images are resized to the model's grid


def test_the_json_help_says_what_each_command_prints():
    assert "per file" in options_of("transcribe")["--json"]
    assert "--dry-run" in options_of("embed")["--json"]
    assert "matches" in options_of("search")["--json"]
    assert "answer, model, finish reason" in options_of("ask")["--json"]  # the chat commands keep theirs
    assert "pieces" in options_of("transcribe")["--dry-run"]


@pytest.mark.parametrize("args", [
    ["transcribe", "clip.wav", "--system", "be terse"],
    ["transcribe", "clip.wav", "--temperature", "0.2"],
    ["transcribe", "clip.wav", "--max-pixels", "1000"],
    ["embed", "photo.png", "--max-tokens", "5"],
    ["embed", "photo.png", "--verify"],
    ["search", "a red car", "--index", "idx", "--no-stream"],
])
def test_an_option_that_would_be_ignored_is_a_usage_error(mmcli, args):
    run = mmcli(*args)
    assert_clean_error(run, 2, "no such option")


def test_the_chat_commands_keep_every_shared_option():
    for command in ("ask", "video", "docqa", "detect"):
        assert set(CHAT_ONLY + IMAGE_ONLY) <= set(options_of(command)), command
