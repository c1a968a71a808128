"""The Python API's keyword arguments, checked like the CLI's options and turned into the same option objects."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from ..errors import UsageError
from ..switches import finite

if TYPE_CHECKING:
    from ..settings import CommonOptions, EndpointFlags
    from ..media.frames import SamplingOptions
    from ..tasks.detect.jobs import DetectOptions
    from ..tasks.docqa import DocOptions

Check = Callable[[str, object], object]

# The variables the CLI binds to these options (Typer's envvar=); the API honours them the same way.
ENV_FLAGS = {"profile": "MMCLI_PROFILE", "base_url": "MMCLI_BASE_URL", "model": "MMCLI_MODEL",
             "family": "MMCLI_FAMILY", "timeout": "MMCLI_TIMEOUT"}


def _bad(name: str, value: object, wanted: str) -> UsageError:
    return UsageError(f"invalid value for {name}", f"{_shown(value)} is not {wanted}", hint=f"give {name} {wanted}")


def _shown(value: object) -> str:
    """The value as the error line shows it, cut short; a whole number of many digits by its size only."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        # str() of a number past 4300 digits raises ValueError; its length is counted without it.
        digits = int(abs(value).bit_length() * math.log10(2)) + 1
        digits -= abs(value) < 10 ** (digits - 1)
        return f"a {digits}-digit number"
    try:
        shown = repr(value)
    except ValueError:  # such a number inside a list
        return f"a {type(value).__name__}"
    return shown if len(shown) <= 80 else shown[:77] + "..."


def whole(low: int, high: Optional[int] = None) -> Check:
    """A whole number in [low, high]."""
    wanted = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")

    def check(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
                or (high is not None and value > high):
            raise _bad(name, value, wanted)
        return int(value)
    return check


def real(low: float) -> Check:
    """A finite number of at least `low`."""
    def check(name: str, value: object) -> float:
        number = finite(value)
        if number is None or number < low:
            raise _bad(name, value, f"a finite number of at least {low:g}")
        return number
    return check


def flag(name: str, value: object) -> bool:
    """True or False."""
    if not isinstance(value, bool):
        raise _bad(name, value, "True or False")
    return value


def text(name: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise _bad(name, value, "a non-empty string")
    return value


def choice(*values: str) -> Check:
    """One of `values`."""
    def check(name: str, value: object) -> str:
        if value not in values:
            raise _bad(name, value, "one of " + ", ".join(values))
        return str(value)
    return check


def time_value(name: str, value: object) -> float:
    """Seconds: a number, or text like 90.5, 1:30 or 1:02:03.5."""
    from ..media.frames import parse_time

    hint = "use seconds (90, 90.5) or [h:]mm:ss (1:30, 1:02:03.5)"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = finite(value)
        if number is None or number < 0:
            raise UsageError("invalid time", f"{_shown(value)} is not zero or more seconds", where=name, hint=hint)
        return number
    if not isinstance(value, str):
        raise UsageError("invalid time", f"{_shown(value)} is neither seconds nor text", where=name, hint=hint)
    try:
        return parse_time(value)
    except ValueError as exc:
        raise UsageError("invalid time", str(exc), where=f"{name}={_shown(value)}", hint=hint) from None


def pages(name: str, value: object) -> str:
    """A page list: text like "1-4,7", a page number, or page numbers."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (list, tuple, range)):
        value = ",".join(str(whole(1)(name, n)) for n in value)
    if not isinstance(value, str):
        raise _bad(name, value, 'pages like "1-4,7", a page number or a list of them')
    if not value.strip():
        raise UsageError(f"invalid value for {name}", "the page list is empty",
                         hint='give pages like "3", "1-4,7" or "10-", or leave pages out for all pages')
    return value


def schema_value(name: str, value: object) -> object:
    """schema=: a JSON Schema (dict), or what --schema takes (a file path, inline JSON, the short form)."""
    from ..schema import Schema, check_schema, load_schema

    if isinstance(value, Schema):
        return value
    if isinstance(value, dict):
        check_schema(value, where=name)
        return Schema(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return load_schema(value)
    raise _bad(name, value, "a JSON Schema (dict), a schema file path, or the short form (str)")


def texts(name: str, value: object) -> list:
    """One text or a list of them, each non-empty words."""
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, (list, tuple)) or any(not isinstance(t, str) or not t.strip() for t in listed):
        raise _bad(name, value, "a text or a list of texts, each non-empty words")
    return list(listed)


def path_value(name: str, value: object) -> str:
    """A file or folder name (str or os.PathLike)."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value) or not isinstance(os.fspath(value), str):
        raise _bad(name, value, "a file or folder name (str or pathlib.Path)")
    return os.fspath(value)


def commands(name: str, value: object) -> str:
    """One of the commands a many-job run or a plan takes (ask, video, docqa, detect)."""
    from ..batch.work import COMMANDS

    return choice(*COMMANDS)(name, value)


COMMON: dict[str, tuple[str, Check]] = {
    "max_pixels": ("media", whole(1)), "min_pixels": ("media", whole(1)),
    "max_tokens_per_image": ("media", whole(1)), "lossless": ("media", flag), "pass_url": ("media", flag),
    "system": ("generation", text), "max_tokens": ("generation", whole(1)),
    "temperature": ("generation", real(0.0)), "stream": ("generation", flag),
}
SAMPLING: dict[str, tuple[str, Check]] = {
    "fps": ("sampling", real(0.001)), "min_frames": ("sampling", whole(2)), "max_frames": ("sampling", whole(2)),
    "frames": ("sampling", whole(2)), "start": ("sampling", time_value), "end": ("sampling", time_value),
    "total_pixels": ("sampling", whole(1)), "max_request_mb": ("sampling", real(0.01)),
    "transport": ("sampling", choice("frames", "images", "file")), "frame_limit": ("sampling", whole(2)),
}
DOCUMENT: dict[str, tuple[str, Check]] = {
    "pages": ("doc", pages), "dpi": ("doc", whole(10, 1200)), "with_text": ("doc", flag),
    "pages_per_request": ("doc", whole(1)), "per_page": ("doc", flag), "password_env": ("doc", text),
    "max_pages": ("doc", whole(1)),
}
DETECTION: dict[str, tuple[str, Check]] = {
    "points": ("detect", flag), "coords": ("detect", choice("abs", "norm1000", "norm1")),
    "strict": ("detect", flag), "guided": ("detect", flag), "pages": ("detect", pages), "password_env": ("detect", text),
    "max_pages": ("detect", whole(1)),
}
STRUCTURED: dict[str, tuple[str, Check]] = {"schema": ("generation", schema_value)}
TASKS: dict[str, dict[str, tuple[str, Check]]] = {
    "ask": {**COMMON, **SAMPLING, **STRUCTURED}, "video": {**COMMON, **SAMPLING, **STRUCTURED},
    "docqa": {**COMMON, **DOCUMENT, **STRUCTURED}, "detect": {**COMMON, **DETECTION},
}

CLIENT_CHECKS: dict[str, Check] = {"profile": text, "base_url": text, "model": text, "family": text,
                                   "api_key_env": text, "timeout": real(0.0), "autostart": flag,
                                   "log": flag}
RUN: dict[str, tuple[str, Check]] = {"output": ("run", path_value), "concurrency": ("run", whole(1, 256)),
                                     "retry_failed": ("run", flag), "engine": ("run", choice("local", "ray")),
                                     "ray_address": ("run", text)}
# Every keyword of every Client method and how it is checked (the questions and inputs, positional, excepted:
# they are checked as the commands' arguments are). A keyword not in its method's row is refused by name.
METHODS: dict[str, dict[str, tuple[str, Check]]] = {
    **TASKS, "ask_stream": TASKS["ask"],
    "client": {name: ("endpoint", check) for name, check in CLIENT_CHECKS.items()},
    "conversation": {"cid": ("call", text), "system": ("call", text), "log": ("call", flag)},
    "transcribe": {"language": ("call", text), "prompt": ("call", text), "max_upload_mb": ("call", real(0.1)),
                   "start": ("call", time_value), "end": ("call", time_value)},
    "embed": {"texts": ("call", texts), "preset": ("call", text), "batch_size": ("call", whole(1)),
              "pages": ("call", pages)},
    "search": {"query": ("call", text), "index": ("call", path_value), "top_k": ("call", whole(1)),
               "preset": ("call", text)},
    "each": {"task": ("call", commands), **RUN, "recursive": ("run", flag)},
    "batch": RUN,
    "plan": {"task": ("call", commands)},
}

# CLI options that have another form in the API, and what to use instead.
ELSEWHERE = {
    "json": "results are objects already", "json_output": "results are objects already",
    "dry_run": "use client.plan(...)", "debug": "errors are exceptions with their traceback",
    "draw": "use Detections.draw(path)", "crop": "crop from Detections.items[i].bbox",
    "format": "use Detections.to_coco()", "output_dir": "use Detections.draw(path)",
    "force": "pass force=True to Detections.draw", "as_": "use transport=", "as": "use transport=",
    "profile": "pass it to mmcli.Client(...)", "base_url": "pass it to mmcli.Client(...)",
    "model": "pass it to mmcli.Client(...)", "family": "pass it to mmcli.Client(...)",
    "api_key_env": "pass it to mmcli.Client(...)", "timeout": "pass it to mmcli.Client(...)",
    "autostart": "pass it to mmcli.Client(...)", "log": "pass it to mmcli.Client(...) or client.conversation(...)",
    "backend": 'engine="ray" sends to the Client\'s endpoint; Ray\'s own vLLM engines are the CLI\'s '
               "--engine ray --backend vllm --model ID",
}


@dataclass
class TaskOptions:
    """A call's keywords as the option objects the tasks take."""

    common: "CommonOptions"
    sampling: "SamplingOptions"
    doc: "DocOptions"
    detect: dict  # DetectOptions needs the target: built by `detect_options`

    def detect_options(self, target: str) -> "DetectOptions":
        """detect's options for `target`."""
        from ..tasks.detect.jobs import DetectOptions

        return DetectOptions(target=target, **self.detect)


def task_options(task: str, options: dict, flags: "EndpointFlags", dry_run: bool = False) -> TaskOptions:
    """Check a call's keywords against the CLI's options for `task` and build the option objects."""
    from ..settings import CommonOptions, GenerationOptions, MediaOptions, OutputOptions
    from ..media.frames import SamplingOptions
    from ..tasks.docqa import DocOptions

    known = TASKS[task]
    groups: dict[str, dict] = {"media": {}, "generation": {}, "sampling": {}, "doc": {}, "detect": {}}
    for name, value in checked(task, options).items():
        groups[known[name][0]][name] = value
    sampling = SamplingOptions(**groups["sampling"])
    problems = sampling.problems()
    if problems:
        raise UsageError("invalid video options", problems[0])
    common = CommonOptions(endpoint=flags, media=MediaOptions(**groups["media"]),
                           generation=GenerationOptions(**groups["generation"]),
                           output=OutputOptions(dry_run=dry_run))
    return TaskOptions(common, sampling, DocOptions(**groups["doc"]), groups["detect"])


def checked(method: str, given: dict) -> dict:
    """A call's keywords checked by METHODS[method]: an unknown name or a wrong value is one UsageError naming it,
    before anything is read or sent; None (the default, as an option left out) is left out."""
    known = METHODS[method]
    unknown = [name for name in given if name not in known]
    if unknown:
        instead = "; ".join(f"{n}: {ELSEWHERE[n]}" for n in unknown if n in ELSEWHERE)
        raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''} for {method}", ", ".join(unknown),
                         hint=instead or "known options: " + ", ".join(sorted(known)))
    return {name: known[name][1](name, value) for name, value in given.items() if value is not None}


def endpoint_flags(given: dict, environ: Mapping[str, str]) -> "EndpointFlags":
    """The Client's endpoint keywords, else their MMCLI_* variables (as the CLI reads them), else unset."""
    from ..settings import EndpointFlags

    values = checked("client", given)
    for name in CLIENT_CHECKS:
        if name in values:
            continue
        if environ.get(ENV_FLAGS.get(name, "")):
            values[name] = _from_env(name, environ[ENV_FLAGS[name]])
            if name == "family":
                values["family_source"] = "env"
    return EndpointFlags(**values)


def _from_env(name: str, value: str) -> object:
    if name != "timeout":
        return value
    try:
        number = finite(float(value))
    except ValueError:
        number = None
    if number is None or number < 0:
        raise UsageError("invalid MMCLI_TIMEOUT", f"{value!r} is not a number of seconds",
                         hint="unset it or give seconds, e.g. MMCLI_TIMEOUT=300")
    return number
