"""On/off settings and sizes read from the flag, the environment and the config file, in that order."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from .errors import UsageError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def switch(flag: Optional[bool], environ: Mapping[str, str], variable: str, config: dict, key: str,
           path: Path) -> bool:
    """An on/off setting: the flag > the environment variable (1/0) > the config file's key > on."""
    if flag is not None:
        return flag
    value = environ.get(variable, "").strip().lower()
    if value:
        if value not in _TRUE + _FALSE:
            raise UsageError(f"invalid {variable}", where=value, hint="use 1 or 0")
        return value in _TRUE
    configured = config.get(key, True)
    if not isinstance(configured, bool):
        raise UsageError("invalid config file", f"'{key}' must be true or false", where=str(path))
    return configured


def media_cap(config: dict, path: Path) -> int:
    """Bytes of one media item the history keeps: the config file's `log_media_mb` (default 20)."""
    value = config.get("log_media_mb", 20)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError("invalid config file", "'log_media_mb' must be a number of megabytes (0 or more)",
                         where=str(path))
    return int(value * 1024 * 1024)
