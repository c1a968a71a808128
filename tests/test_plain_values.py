"""Plain values skip Typer's validator: for every parameter of every command, what the shortcut hands the
command equals what Typer's own validator would, and values that need converting or checking still are."""

from __future__ import annotations

import pytest
import typer
from typer._coercion import build_runtime_param

from mmcli.cli.app import root_command
from mmcli.cli.plain_values import _PassPlainValues


def every_parameter():
    """(command path, parameter, context) for each command in the tree, help options included."""
    found = []

    def walk(command, ctx):
        for param in command.get_params(ctx):
            found.append((ctx.command_path, param, ctx))
        for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
            sub = command.get_command(ctx, name)
            walk(sub, typer.Context(sub, info_name=name, parent=ctx))

    root = root_command()
    walk(root, typer.Context(root, info_name="mmcli"))
    return found


PARAMETERS = [found for found in every_parameter() if hasattr(found[1], "type_descriptor")]


def test_every_command_is_covered():
    assert len({path for path, _param, _ctx in PARAMETERS}) >= 20
    assert all(isinstance(param._runtime_param, _PassPlainValues) for _path, param, _ctx in PARAMETERS)


@pytest.mark.parametrize("path, param, ctx", PARAMETERS, ids=[f"{p} {q.name}" for p, q, _c in PARAMETERS])
def test_the_default_and_a_plain_string_come_out_as_typer_would_make_them(path, param, ctx):
    typers_own = build_runtime_param(param.type_descriptor)
    shortcut = _PassPlainValues(param)
    values = [None, param.default]
    if not (param.multiple or param.nargs == -1):
        values.append("7")
    for value in values:
        try:
            expected = typers_own.coerce(value, param=param, ctx=ctx)
        except typer.BadParameter as error:
            with pytest.raises(typer.BadParameter) as raised:
                shortcut.coerce(value, param=param, ctx=ctx)
            assert raised.value.message == error.message
            continue
        got = shortcut.coerce(value, param=param, ctx=ctx)
        assert got == expected and type(got) is type(expected), (value, got, expected)


def test_values_that_need_checking_are_checked(mmcli, tmp_path):
    too_few = mmcli("ask", "hi", "--max-tokens", "0", "--dry-run")
    assert too_few.code == 2 and "greater than or equal to 1" in too_few.stderr
    not_a_number = mmcli("ask", "hi", "--temperature", "warm", "--dry-run")
    assert not_a_number.code == 2 and "--temperature" in not_a_number.stderr
    list_of_strings = mmcli("ask", "hi", "--base-url", "http://127.0.0.1:9/v1", "--base-url",
                            "http://127.0.0.1:8/v1", "-m", "m", "--dry-run", "--json")
    assert list_of_strings.code == 0, list_of_strings.stderr
