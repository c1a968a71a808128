"""mmcli serve --embed: vLLM's pooling runner and the preset's chat template, the safe defaults kept."""

from __future__ import annotations

import pytest

from mmcli.presets import DSE_TEMPLATE, VLM2VEC_TEMPLATE
from mmcli.errors import UsageError
from mmcli.server.command_line import NO_REMOTE_MEDIA, Launcher, ServeOptions, build_command, check_options, choose_model
from tests.conftest import assert_clean_error


def _argv(model: str, **flags) -> list[str]:
    opts = ServeOptions(model=model, **flags)
    check_options(opts)
    choice = choose_model(model, local_dir=None, model_type=None)
    return build_command(opts, choice, Launcher.script("vllm")).argv


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("model, template", [
    ("MrLight/dse-qwen2-2b-mrl-v1", DSE_TEMPLATE),
    ("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct", DSE_TEMPLATE),
    ("TIGER-Lab/VLM2Vec-Full", VLM2VEC_TEMPLATE),
])
def test_embed_serves_a_pooling_model_with_the_presets_template(model, template):
    argv = _argv(model, embed=True)
    assert _value(argv, "--runner") == "pooling"
    assert _value(argv, "--chat-template") == template
    # The safe defaults stay.
    assert _value(argv, "--host") == "127.0.0.1" and _value(argv, "--allowed-media-domains") == NO_REMOTE_MEDIA


def test_plain_embedding_keeps_the_models_own_template():
    argv = _argv("Qwen/Qwen2-VL-2B-Instruct", embed=True)
    assert _value(argv, "--runner") == "pooling" and "--chat-template" not in argv


def test_an_explicit_preset_wins_and_no_embed_means_no_pooling():
    assert _value(_argv("Qwen/Qwen2-VL-2B-Instruct", embed=True, preset="dse-qwen2"), "--chat-template") == DSE_TEMPLATE
    assert "--runner" not in _argv("Qwen/Qwen2-VL-2B-Instruct")


def test_preset_needs_embed_and_a_known_name():
    with pytest.raises(UsageError, match="--preset needs --embed"):
        _argv("Qwen/Qwen2-VL-2B-Instruct", preset="gme")
    with pytest.raises(UsageError, match="unknown embedding preset"):
        _argv("Qwen/Qwen2-VL-2B-Instruct", embed=True, preset="clip")


def test_cli_dry_run_shows_the_pooling_runner(mmcli):
    run = mmcli("serve", "MrLight/dse-qwen2-2b-mrl-v1", "--embed", "--dry-run")
    assert run.code == 0, run.stderr
    assert "--runner pooling" in run.stdout and "<|endoftext|>" in run.stdout
    assert_clean_error(mmcli("serve", "qwen2-vl", "--preset", "gme", "--dry-run"), 2, "--preset needs --embed")
