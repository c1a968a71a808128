"""On/off settings and numbers read from the flag, the environment and the config file, in that order;
one check for every number, whatever its source."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from .errors import UsageError

MAX_LOG_MEDIA_MB = 1_000_000.0  # a terabyte: past it a cap is no cap, and bigger numbers overflow
CONFIG_HINT = "fix the file: its keys are described in docs/configuration.md"
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
        raise UsageError("invalid config file", f"'{key}' must be true or false", where=str(path),
                         hint=CONFIG_HINT)
    return configured


def finite(value: object) -> Optional[float]:
    """`value` as a float when it is a finite real number; None for nan, inf, a number too large for a
    float (10**400) and anything that is no number (True and False included)."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def checked_number(value: object, name: str, *, at_most: float, above: Optional[float] = None,
                   at_least: Optional[float] = None, unit: str = "", where: str = "", hint: str = "") -> float:
    """A number from any source (flag, environment, config file, Python): finite and in range, else a usage
    error. NaN fails every comparison and inf or 1e308 overflow what uses them, so both are refused here."""
    real = not isinstance(value, bool) and isinstance(value, (int, float))
    number = finite(value)
    if number is None or (above is not None and not number > above) \
            or (at_least is not None and not number >= at_least) or not number <= at_most:
        # inf and nan as themselves; a whole number too large for a float would not even format
        said = (f"{number:g}" if number is not None else str(value) if isinstance(value, float) else "a huge number")
        shown = f"{said}{' ' + unit if unit else ''}" if real else f"{value!r} is not a number"
        raise UsageError(f"invalid {name}", shown, where=where, hint=hint)
    return number


def media_cap(config: dict, path: Path) -> int:
    """Bytes of one media item the history keeps: the config file's `log_media_mb` (default 20)."""
    megabytes = checked_number(config.get("log_media_mb", 20), "log_media_mb", at_least=0, at_most=MAX_LOG_MEDIA_MB,
                               unit="MB", where=str(path),
                               hint=f"set log_media_mb in the config file to megabytes from 0 to {MAX_LOG_MEDIA_MB:g}")
    return int(megabytes * 1024 * 1024)
