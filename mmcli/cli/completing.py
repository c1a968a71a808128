"""TAB completion of option values: the choices an option takes (`--family`, `--as`, `--device`, `--preset`,
`--profile`, `--format`, `--export`, ...) and `mmcli serve status|stop|ALIAS`, through Click's protocol.

Attached once a command is built, so the option declarations stay as they are: an option whose metavar
lists its values (`frames|images|file`) offers those; the others are named here."""

from __future__ import annotations

import re
from typing import Callable

_LISTED = re.compile(r"^[a-z0-9][a-z0-9.-]*(\|[a-z0-9][a-z0-9.-]*)+$")


def _families() -> list[str]:
    from ..families import FAMILIES

    return list(FAMILIES)


def _profiles() -> list[str]:
    import os

    from ..settings import BUILTIN_PROFILES, config_path, load_config
    from ..errors import MmcliError

    names = list(BUILTIN_PROFILES)
    try:
        profiles = load_config(config_path(os.environ)).get("profiles") or {}
    except MmcliError:
        return names  # a broken config file must not break TAB
    return names + sorted(name for name in profiles if isinstance(name, str) and name not in names)


def _presets() -> list[str]:
    from ..presets import PRESETS

    return list(PRESETS)


def _serve_models() -> list[str]:
    from ..families import SERVE_ALIASES

    return ["status", "stop", *SERVE_ALIASES]


# By option name (or argument name), for those whose metavar does not list the values.
_NAMED: dict[str, Callable[[], list[str]]] = {
    "--family": _families,
    "--profile": _profiles,
    "--preset": _presets,
    "--export": lambda: ["openai-batch"],
}


def _completer(values: Callable[[], list[str]]):
    def complete(ctx, param, incomplete: str) -> list[str]:  # noqa: ARG001 - Click's signature
        if incomplete.startswith((".", "/", "~")):
            return []  # a path: the shell completes file names
        return [value for value in values() if value.startswith(incomplete)]

    return complete


def _values_for(param) -> Callable[[], list[str]] | None:
    opts = getattr(param, "opts", [])
    for name in opts:
        if name in _NAMED:
            return _NAMED[name]
    metavar = param.metavar or ""
    if param.param_type_name == "option" and _LISTED.match(metavar):
        listed = metavar.split("|")
        return lambda: listed
    return None


def attach(command, path: str = "") -> None:
    """Give the options (and serve's MODEL) of `command` and its subcommands value completion."""
    for param in command.params:
        values = _serve_models if (path == "serve" and param.name == "model") else _values_for(param)
        if values is not None and getattr(param, "_custom_shell_complete", None) is None:
            param._custom_shell_complete = _completer(values)
    for name, sub in getattr(command, "commands", {}).items():
        attach(sub, name)
