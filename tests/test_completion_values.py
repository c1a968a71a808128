"""TAB completion through Click's protocol (what the scripts in completions/ ask at TAB time): option
values and `mmcli serve status|stop|ALIAS`, for bash, zsh and fish."""

from __future__ import annotations

import pytest


def bash(mmcli, line: str) -> list[str]:
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    run = mmcli(env={"COMP_WORDS": line, "COMP_CWORD": str(cword), "_MMCLI_COMPLETE": "complete_bash"})
    assert run.code == 0, run.stderr
    return run.stdout.split()


@pytest.mark.parametrize("line, expected", [
    ("mmcli ask --family ", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "qwen2-audio", "generic"]),
    ("mmcli ask photo.jpg hi --family qwen3", ["qwen3-vl"]),
    ("mmcli video clip.mp4 --as ", ["frames", "images", "file"]),
    ("mmcli serve --device ", ["auto", "cuda", "cpu"]),
    ("mmcli embed --preset d", ["dse-qwen2"]),
    ("mmcli serve x --embed --preset ", ["plain", "vlm2vec", "dse-qwen2", "gme"]),
    ("mmcli detect --format ", ["json", "coco"]),
    ("mmcli transcribe --format ", ["text", "json", "srt", "vtt"]),
    ("mmcli embed --format ", ["jsonl", "npy"]),
    ("mmcli ask --export ", ["openai-batch"]),
    ("mmcli batch run tasks.jsonl --export ", ["openai-batch"]),
    ("mmcli serve st", ["status", "stop"]),
    ("mmcli serve qwen2.5-vl-", ["qwen2.5-vl-3b", "qwen2.5-vl-7b", "qwen2.5-vl-32b", "qwen2.5-vl-72b"]),
    ("mmcli serve ./", []),  # a folder: the shell completes file names
])
def test_bash_offers_the_values(mmcli, line, expected):
    assert bash(mmcli, line) == expected


def test_profiles_include_the_config_file_and_survive_a_broken_one(mmcli, clean_env):
    from pathlib import Path

    config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[profiles.gpu-box]\nbase_url = "http://gpu-box.lan:8000/v1"\n')
    assert bash(mmcli, "mmcli ask --profile ") == ["local", "parasail", "openai", "xinference", "gpu-box"]
    config.write_text("[profiles\n")
    assert bash(mmcli, "mmcli ask --profile ") == ["local", "parasail", "openai", "xinference"]


def test_zsh_and_fish_get_the_same_values(mmcli):
    zsh = mmcli(env={"_TYPER_COMPLETE_ARGS": "mmcli serve --device ", "_MMCLI_COMPLETE": "complete_zsh"})
    assert zsh.code == 0 and all(f'"{value}"' in zsh.stdout for value in ("auto", "cuda", "cpu")), zsh.stdout
    fish = mmcli(env={"_TYPER_COMPLETE_ARGS": "mmcli video x.mp4 --as ", "_MMCLI_COMPLETE": "complete_fish",
                      "_TYPER_COMPLETE_FISH_ACTION": "get-args"})
    assert fish.code == 0 and fish.stdout.split() == ["frames", "images", "file"], fish.stdout
