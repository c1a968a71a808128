"""Command-line values that already are what their parameter declares skip Typer's validator.

Typer builds a pydantic validator for every parameter of the command being run, even one left at its
default of None (`ask` has 36), and importing pydantic for them is most of a text question's start-up
beyond the HTTP library. A value left unset, a declared default, or a string for a `str` parameter
needs no conversion; every other value goes to Typer's own validator, built when it is first needed,
so range checks, choices and paths are checked exactly as before."""

from __future__ import annotations

import typing
from enum import Enum
from typing import Any

from typer.core import TyperCommand, TyperGroup

# Types whose declared default pydantic would hand back unchanged.
_AS_DECLARED = (str, int, float, bool)


def _unwrapped(annotation: Any) -> Any:
    """`Optional[X]` -> X; anything else as it is."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    return annotation


class _PassPlainValues:
    """Stands in for Typer's per-parameter coercion (`coerce(value, param, ctx)`)."""

    def __init__(self, param) -> None:
        descriptor = param.type_descriptor
        self.annotation = _unwrapped(descriptor.annotation)
        self.custom = descriptor.file_annotation is not None or descriptor.parameter_info.parser is not None
        self.typers_own = None

    def _needs_nothing(self, value: Any, param) -> bool:
        if self.custom:
            return False
        if param.multiple or param.nargs == -1:
            return (typing.get_origin(self.annotation) is list and typing.get_args(self.annotation) == (str,)
                    and isinstance(value, (list, tuple)) and all(type(item) is str for item in value))
        if self.annotation is str:
            return type(value) is str
        kind = type(value)
        declared = kind is self.annotation and (kind in _AS_DECLARED or issubclass(kind, Enum))
        return declared and value == param.default

    def coerce(self, value: Any, param, ctx) -> Any:
        """The value as the command receives it."""
        if value is None:
            return () if (param.multiple or param.nargs == -1) else None
        if self._needs_nothing(value, param):
            return list(value) if isinstance(value, tuple) else value
        if self.typers_own is None:
            from typer._coercion import build_runtime_param

            self.typers_own = build_runtime_param(param.type_descriptor)
        return self.typers_own.coerce(value, param=param, ctx=ctx)


def pass_plain_values(params: list) -> list:
    """Give each of Typer's parameters the shortcut once; a parameter of another kind is left alone."""
    for param in params:
        if getattr(param, "_runtime_param", False) is None and hasattr(param, "type_descriptor"):
            param._runtime_param = _PassPlainValues(param)
    return params


class PlainValues:
    """For Typer commands and groups: every parameter, the help option too, takes plain values as they are."""

    def get_params(self, ctx) -> list:
        """The command's parameters, each with the shortcut."""
        return pass_plain_values(super().get_params(ctx))


class PlainValuesCommand(PlainValues, TyperCommand):
    """A Typer command whose plain values skip the validator."""


class PlainValuesGroup(PlainValues, TyperGroup):
    """A Typer group whose plain values skip the validator."""
