"""The options every client command shares, declared once and attached by a decorator."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Callable, Optional

import typer

if TYPE_CHECKING:
    from ..settings import CommonOptions

ENDPOINT = "Endpoint"
GENERATION = "Generation"
MEDIA = "Media budget"
OUTPUT = "Output"


@dataclass
class RunState:
    """What the error boundary learns while the command line is parsed; it is the root `ctx.obj`."""

    debug: bool = False


def note_debug(ctx: typer.Context, value: bool) -> bool:
    """Callback of every --debug option: tell the error boundary to show tracebacks."""
    if value and isinstance(ctx.obj, RunState):
        ctx.obj.debug = True
    return value


def page_list(value: Optional[str]) -> Optional[str]:
    """Callback of --pages: an empty list is a mistake, not "all pages" (leave the option out for that)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("the page list is empty; give pages like 3, 1-4,7 or 10-, "
                                 "or leave --pages out for all pages")
    return value


def guard_floats(command) -> None:
    """Make every number option of `command` and its subcommands refuse nan, inf and values too large to be
    a float (1e400 reads as inf): such a value would reach the request and break its JSON, or a size sum."""
    import typing

    for sub in getattr(command, "commands", {}).values():
        guard_floats(sub)
    for param in command.params:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        if float in (annotation, *typing.get_args(annotation), *_inner(annotation)):
            param.callback = _finite_callback(param.callback)


def _inner(annotation: object) -> tuple:
    import typing

    return tuple(a for arg in typing.get_args(annotation) for a in typing.get_args(arg))


def _finite_callback(callback: Optional[Callable]) -> Callable:
    from ..switches import finite

    def check(ctx: typer.Context, param, value):
        for number in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(number, float) and finite(number) is None:
                raise typer.BadParameter(f"{number} is not a finite number; give an ordinary number, e.g. 0.5 or 30")
        return callback(ctx, param, value) if callback is not None else value
    return check


# name -> (annotation, default); the order here is the order in --help.
SHARED_PARAMETERS: dict[str, tuple[object, object]] = {
    "profile": (Annotated[Optional[str], typer.Option(
        "--profile", envvar="MMCLI_PROFILE", metavar="NAME", rich_help_panel=ENDPOINT,
        help="Endpoint profile: local (default), parasail, openai, xinference, or one from the config file.")], None),
    "base_url": (Annotated[Optional[list[str]], typer.Option(
        "--base-url", envvar="MMCLI_BASE_URL", metavar="URL", rich_help_panel=ENDPOINT, show_default=False,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (overrides the profile). Give it "
             "several times to share the jobs of --each or mmcli batch among several servers.")], None),
    "api_key_env": (Annotated[Optional[str], typer.Option(
        "--api-key-env", metavar="NAME", rich_help_panel=ENDPOINT,
        help="Read the API key from environment variable NAME (the key itself is never a flag).")], None),
    "model": (Annotated[Optional[str], typer.Option(
        "--model", "-m", envvar="MMCLI_MODEL", metavar="ID", rich_help_panel=ENDPOINT,
        help="Model id; default: the profile's model, else the first one the endpoint lists.")], None),
    "family": (Annotated[Optional[str], typer.Option(
        "--family", envvar="MMCLI_FAMILY", metavar="FAMILY", rich_help_panel=ENDPOINT,
        help="Model family (qwen2-vl, qwen2.5-vl, qwen3-vl, qwen2-audio, generic); default: judged from the model id.")], None),
    "timeout": (Annotated[Optional[float], typer.Option(
        "--timeout", envvar="MMCLI_TIMEOUT", metavar="SECONDS", rich_help_panel=ENDPOINT,
        help="Seconds a reply may take, from sending the request to its last byte; a streamed answer may run "
             "longer while each new part comes within them. [default: 120]")], None),
    "autostart": (Annotated[Optional[bool], typer.Option(
        "--autostart/--no-autostart", rich_help_panel=ENDPOINT, show_default=False,
        help="When the default local endpoint is down and vLLM is installed, start it in the background "
             "(mmcli serve --detach). [default: on; MMCLI_AUTOSTART=0 or `autostart = false` in the config]")], None),
    "system": (Annotated[Optional[str], typer.Option(
        "--system", metavar="TEXT", rich_help_panel=GENERATION, help="System prompt.")], None),
    "max_tokens": (Annotated[Optional[int], typer.Option(
        "--max-tokens", min=1, metavar="N", rich_help_panel=GENERATION,
        help="Longest answer, in tokens (default: the server's).")], None),
    "temperature": (Annotated[Optional[float], typer.Option(
        "--temperature", min=0.0, metavar="T", rich_help_panel=GENERATION, help="Sampling temperature (0 = greedy).")], None),
    "stream": (Annotated[bool, typer.Option(
        "--stream/--no-stream", rich_help_panel=GENERATION,
        help="Show the answer as it is written.")], True),
    "max_pixels": (Annotated[Optional[int], typer.Option(
        "--max-pixels", min=1, metavar="N", rich_help_panel=MEDIA,
        help="Most pixels per image after resizing. Qwen default: 1280*28*28 = 1003520 "
             "(1280 visual tokens; 1280*32*32 for Qwen3-VL); other models: longest side 2048.")], None),
    "min_pixels": (Annotated[Optional[int], typer.Option(
        "--min-pixels", min=1, metavar="N", rich_help_panel=MEDIA,
        help="Fewest pixels per image; smaller images are scaled up. Qwen default: 4*28*28.")], None),
    "max_tokens_per_image": (Annotated[Optional[int], typer.Option(
        "--max-tokens-per-image", min=1, metavar="N", rich_help_panel=MEDIA,
        help="Budget in visual tokens per image (Qwen families); sets --max-pixels to N*factor^2.")], None),
    "lossless": (Annotated[bool, typer.Option(
        "--lossless", rich_help_panel=MEDIA, help="Send PNG instead of JPEG (larger, exact pixels).")], False),
    "pass_url": (Annotated[bool, typer.Option(
        "--pass-url", rich_help_panel=MEDIA,
        help="Send http(s) URLs unchanged for the server to fetch, instead of downloading and resizing.")], False),
    "json_output": (Annotated[bool, typer.Option(
        "--json", rich_help_panel=OUTPUT,
        help="Print one JSON object (answer, model, finish reason, usage, plan) instead of text.")], False),
    "dry_run": (Annotated[bool, typer.Option(
        "--dry-run", rich_help_panel=OUTPUT,
        help="Print the plan (sizes, visual tokens, bytes) and the request; send nothing.")], False),
    "verify": (Annotated[bool, typer.Option(
        "--verify", rich_help_panel=OUTPUT,
        help="On a vLLM endpoint, count the prompt's text exactly (POST /tokenize) and check that the server "
             "saw exactly the visual tokens planned; warn when not.")], False),
    "log": (Annotated[Optional[bool], typer.Option(
        "--log/--no-log", rich_help_panel=OUTPUT, show_default=False,
        help="Keep the request and answer in the history (mmcli logs; -c continues from it). "
             "[default: on; MMCLI_LOG=0 or `log = false` in the config]")], None),
    "debug": (Annotated[bool, typer.Option(
        "--debug", rich_help_panel=OUTPUT, callback=note_debug, help="Show tracebacks for errors.")], False),
}


def _common_from(values: dict) -> "CommonOptions":
    from ..settings import CommonOptions, EndpointFlags, GenerationOptions, MediaOptions, OutputOptions

    values = {**{name: default for name, (_, default) in SHARED_PARAMETERS.items()}, **values}
    return CommonOptions(
        endpoint=EndpointFlags(profile=values["profile"], base_url=(values["base_url"] or [None])[0],
                               base_urls=tuple(values["base_url"] or ()) if len(values["base_url"] or ()) > 1 else (),
                               api_key_env=values["api_key_env"], model=values["model"],
                               family=values["family"], timeout=values["timeout"],
                               autostart=values["autostart"], log=values["log"],
                               family_source=_source_of("family")),
        media=MediaOptions(max_pixels=values["max_pixels"], min_pixels=values["min_pixels"],
                           max_tokens_per_image=values["max_tokens_per_image"],
                           lossless=values["lossless"], pass_url=values["pass_url"]),
        generation=GenerationOptions(system=values["system"], max_tokens=values["max_tokens"],
                                     temperature=values["temperature"], stream=values["stream"]),
        output=OutputOptions(json=values["json_output"], dry_run=values["dry_run"], verify=values["verify"]),
    )


def _source_of(name: str) -> str:
    """`env` when the option's value came from its environment variable, else `flag`."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return "env" if source is not None and source.name == "ENVIRONMENT" else "flag"


def _evaluated(annotation: object, func: Callable) -> object:
    # Postponed annotations are strings; Typer needs the objects. `opts` is left out on purpose:
    # its type is imported only when the command runs, to keep start-up light.
    if isinstance(annotation, str):
        return eval(annotation, func.__globals__)  # noqa: S307 - the module's own annotation text
    return annotation


def with_common_options(func: Callable) -> Callable:
    """Add the shared options to a command; it receives them as one `opts: CommonOptions` argument."""
    return _with_options(func, tuple(SHARED_PARAMETERS))


# What a command about the endpoint itself (not about media) takes: where it is and how to reach it,
# the family to judge by, the image budget (for a calibration image) and the output switches.
ENDPOINT_PARAMETERS = ("profile", "base_url", "api_key_env", "model", "family", "timeout",
                       "max_pixels", "min_pixels", "max_tokens_per_image", "json_output", "debug")


def with_endpoint_options(func: Callable) -> Callable:
    """Add the endpoint options only; the others take their defaults in `opts`."""
    return _with_options(func, ENDPOINT_PARAMETERS)


def with_options(*names: str, helps: Optional[dict[str, str]] = None) -> Callable[[Callable], Callable]:
    """Add the shared options named, in that order: only those that act on this command (the others take
    their defaults in `opts`); `helps` gives an option its own help where this command uses it differently."""
    unknown = set(names) - set(SHARED_PARAMETERS) or set(helps or ()) - set(names)
    if unknown:
        raise ValueError(f"not shared options of this command: {sorted(unknown)}")
    return functools.partial(_with_options, names=names, helps=helps or {})


# Where requests go and how they are sent, for commands that answer no chat (transcribe): no family, no
# image budget, no generation options.
REQUEST_PARAMETERS = ("profile", "base_url", "api_key_env", "model", "timeout", "autostart")
# What the embedding commands use: the endpoint, the family and image budget (images are resized to its
# grid), and the output switches; an embedding has no system prompt, sampling, streaming or --verify.
EMBEDDING_PARAMETERS = (*REQUEST_PARAMETERS[:4], "family", *REQUEST_PARAMETERS[4:], "max_pixels", "min_pixels",
                        "max_tokens_per_image", "lossless", "pass_url", "json_output", "dry_run", "debug")


# The help of --base-url for a command that talks to one server (no --each, no mmcli batch).
ONE_SERVER = {"base_url": "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (overrides the profile)."}


def _annotation(name: str, helps: dict[str, str]) -> object:
    """The shared option's annotation, with this command's own help text if it has one."""
    import copy
    import typing

    annotation = SHARED_PARAMETERS[name][0]
    if name not in helps:
        return annotation
    kind, info = typing.get_args(annotation)
    info = copy.copy(info)
    info.help = helps[name]
    return Annotated[kind, info]


def _with_options(func: Callable, names: tuple[str, ...], helps: Optional[dict[str, str]] = None) -> Callable:
    helps = helps or {}
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(name, helps),
                                default=SHARED_PARAMETERS[name][1]) for name in names]

    @functools.wraps(func)
    def command(**kwargs):
        values = {name: kwargs.pop(name) for name in names}
        return func(**kwargs, opts=_common_from(values))

    return spliced(func, command, shared, drop="opts")


def spliced(func: Callable, command: Callable, added: list[inspect.Parameter], drop: Optional[str] = None,
            before: Optional[str] = None) -> Callable:
    """`command` (a functools.wraps of `func`) given the signature Typer reads: `func`'s parameters but `drop`,
    their annotations evaluated (but `opts`'s), with `added` before `before` (else at the end), all by keyword."""
    signature = inspect.signature(func)
    own = [p if p.name == "opts" else p.replace(annotation=_evaluated(p.annotation, func))
           for p in signature.parameters.values() if p.name != drop]
    at = next((i for i, p in enumerate(own) if p.name == before), len(own))
    # Keyword-only throughout: Typer passes everything by name, and the order stays as declared.
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at] + added + own[at:]]
    command.__signature__ = signature.replace(parameters=params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # Typer must see the combined signature, not the original
    return command


def parse_time(value: Optional[str], flag: str) -> Optional[float]:
    """Seconds from a --start/--end value; a usage error for anything else."""
    if value is None:
        return None
    from ..errors import UsageError
    from ..media.frames import parse_time as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise UsageError("invalid time", str(exc), where=f"{flag} {value}",
                         hint="use seconds (90, 90.5) or [h:]mm:ss (1:30, 1:02:03.5)") from None
