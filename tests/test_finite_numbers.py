"""nan, inf and numbers too large for a float are usage errors everywhere a number is taken, before anything is sent."""

from __future__ import annotations

import typing

import pytest

import mmcli
from mmcli.errors import UsageError
from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply
from tests.test_batch_tasks import write_tasks


def _float_options() -> list[tuple[tuple[str, ...], str]]:
    """(command path, option) for every option of every command whose value is a float."""
    from mmcli.cli.app import root_command

    found = []

    def walk(command, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))
        for param in command.params:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            if float in (annotation, *typing.get_args(annotation)):
                found.append((path, param.opts[0]))

    root = root_command()
    for name in root.lazy:
        walk(root.get_command(None, name), (name,))
    return found


FLOAT_OPTIONS = _float_options()


def test_the_walk_finds_the_float_options_of_every_kind():
    options = {option for _, option in FLOAT_OPTIONS}
    assert {"--temperature", "--timeout", "--fps", "--max-request-mb", "--max-audio-seconds",
            "--batch-max-mb"} <= options
    assert len({path for path, _ in FLOAT_OPTIONS}) >= 8  # ask, chat, video, batch, serve, transcribe, ...


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-inf"])
def test_every_float_option_refuses_a_number_that_is_not_finite(mmcli, server, value):
    for path, option in FLOAT_OPTIONS:
        run = mmcli(*path, option, value, env={"MMCLI_BASE_URL": server.base_url})
        # nan and -inf may fail an option's lower bound first; inf and 1e400 pass every bound
        assert_clean_error(run, 2, option, *(["not a finite number"] if value in ("inf", "1e400") else []))
        assert "hint:" in run.stderr, (path, option)
    assert server.requests == []


def test_a_non_finite_environment_value_is_refused_too(mmcli, server):
    run = mmcli("ask", "hi", env={"MMCLI_BASE_URL": server.base_url, "MMCLI_TIMEOUT": "inf"})
    assert_clean_error(run, 2, "--timeout", "not a finite number")
    assert server.requests == []


def test_dry_run_refuses_it_as_well(mmcli):
    run = mmcli("ask", "hi", "--temperature", "1e400", "--dry-run", "--base-url", "http://127.0.0.1:9/v1", "-m", "m")
    assert_clean_error(run, 2, "--temperature", "not a finite number")


def test_a_tasks_line_with_infinity_is_left_out_and_the_others_run(mmcli, server, tmp_path):
    server.default = Reply("ok")
    tasks = write_tasks(tmp_path / "t.jsonl", {"command": "ask", "prompt": "good1"},
                        '{"command": "ask", "prompt": "x", "temperature": Infinity}',
                        '{"command": "ask", "prompt": "y", "max-request-mb": NaN}',
                        '{"command": "video", "inputs": ["v.mp4"], "prompt": "z", "fps": 1e400}',
                        {"command": "ask", "prompt": "good2"})
    run = mmcli("batch", tasks, "--base-url", server.base_url, "-o", tmp_path / "out.jsonl")
    assert_clean_error(run, 8, "3 line(s) of the tasks file could not run")
    for number in (2, 3, 4):
        assert f"line {number}:" in run.stderr
    assert "not a finite number" in run.stderr
    sent = sorted(r.json["messages"][-1]["content"] for r in server.chat_requests())
    assert sent == ["good1", "good2"]


@pytest.mark.parametrize("keywords", [{"temperature": 10**400}, {"temperature": float("inf")},
                                      {"temperature": float("nan")}, {"max_tokens": 5, "temperature": -1e400}])
def test_the_api_refuses_them_as_usage_errors(server, keywords):
    client = mmcli.Client(base_url=server.base_url, model="m")
    with pytest.raises(UsageError, match="temperature"):
        client.ask([], "hi", **keywords)
    assert server.requests == []


def test_the_api_refuses_a_huge_timeout_and_fps(server, tmp_path):
    with pytest.raises(UsageError, match="timeout"):
        mmcli.Client(base_url=server.base_url, timeout=10**400)
    client = mmcli.Client(base_url=server.base_url, model="m")
    with pytest.raises(UsageError, match="fps"):
        client.video(tmp_path / "v.mp4", "hi", fps=10**400)
    assert server.requests == []


def test_the_shared_number_check_takes_a_whole_number_too_large_for_a_float():
    from mmcli.switches import checked_number, finite

    assert finite(10**400) is None and finite(float("nan")) is None and finite(True) is None
    assert finite(7) == 7.0
    with pytest.raises(UsageError, match="invalid timeout"):
        checked_number(10**400, "timeout", above=0, at_most=86400, unit="s")
