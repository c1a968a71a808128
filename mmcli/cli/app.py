"""The root command and the one error boundary: every way a run ends becomes one exit status."""

from __future__ import annotations

import errno
import io
import os
import sys
import threading
import traceback
from typing import Optional, Sequence

import typer

from .. import __version__
from ..interrupts import term_as_interrupt
from .commands.ask import EPILOG as ASK_EPILOG
from .commands.ask import HELP as ASK_HELP
from .commands.ask import ask
from .commands import batch as batch_command
from .commands import chat as chat_command
from .commands import detect as detect_command
from .commands import docqa as docqa_command
from .commands import doctor as doctor_command
from .commands import embed as embed_command
from .commands import logs as logs_command
from .commands import search as search_command
from .commands import models as models_command
from .commands import serve as serve_command
from .commands import transcribe as transcribe_command
from .commands import video as video_command
from .options import RunState
from .plain_values import PlainValuesCommand, PlainValuesGroup
from ..errors import ExitCode, MmcliError
from ..terminal import for_stream

EXAMPLES = """Examples:

  mmcli ask photo.jpg "what's here"

  mmcli ask photo.jpg "what's here" --dry-run"""


class _Escaped(Exception):
    """Carries an interrupt or a closed stdout past Typer, which would turn them into bare exit codes."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


def _is_closed_pipe(error: BaseException) -> bool:
    return isinstance(error, BrokenPipeError) or (isinstance(error, OSError) and error.errno == errno.EPIPE)


class RootGroup(PlainValuesGroup):
    """The root group: lets Ctrl-C and a closed stdout reach the error boundary as themselves, and
    builds a subcommand only when it is used (`lazy`), so start-up does not pay for all of them."""

    lazy: dict = {}  # name -> Typer's CommandInfo or TyperInfo, not yet built

    def list_commands(self, ctx) -> list[str]:
        """Every subcommand, built or not, in the order they were declared."""
        return list(self.lazy) or super().list_commands(ctx)

    def get_command(self, ctx, name: str):
        """The subcommand `name`, built on first use."""
        if name not in self.commands and name in self.lazy:
            from .completing import attach

            self.commands[name] = _build(self.lazy[name])
            attach(self.commands[name], name)  # TAB offers option values, not only option names
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        """The subcommand named first in `args`; a typo gets the names it is close to, built or not."""
        from difflib import get_close_matches

        from typer._click.exceptions import UsageError

        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            if self.lazy and args and "Did you mean" not in exc.message:
                matches = get_close_matches(args[0], list(self.lazy))
                if matches:
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise

    def format_commands(self, ctx, formatter) -> None:
        """The command list from each command's own help text, without building any of them."""
        from typer._click.utils import make_default_short_help

        if not self.lazy:
            return super().format_commands(ctx, formatter)
        limit = formatter.width - 6 - max(len(name) for name in self.lazy)
        rows = [(name, make_default_short_help(_help_of(info), limit)) for name, info in self.lazy.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        """Run the subcommand; an interrupt or EPIPE leaves wrapped, so Typer passes it on untouched."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Escaped(exc) from None
        except OSError as exc:
            if _is_closed_pipe(exc):
                raise _Escaped(exc) from None
            raise


def _argument_label(param) -> str:
    # What a person types: PROMPT, INPUT..., [PROMPT] -- not Typer's `{PROMPT}` or `INPUT <list[str]>`.
    name = param.metavar or param.name.upper()
    if not param.required:
        name = f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


class PlainUsageCommand(PlainValuesCommand):
    """A subcommand whose usage line and argument list show plain metavars."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        """`[OPTIONS] [INPUT]... PROMPT`."""
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_argument_label(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]

    def format_options(self, ctx, formatter) -> None:
        """Arguments by their metavar alone, then the options."""
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                arguments.append((name + ("..." if param.nargs != 1 else ""), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


app = typer.Typer(
    name="mmcli",
    cls=RootGroup,
    help="Ask vision-language models about your images, videos and documents.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mmcli {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Ask vision-language models about your images, videos and documents."""


app.command("ask", cls=PlainUsageCommand, help=ASK_HELP, epilog=ASK_EPILOG)(ask)
app.command("video", cls=PlainUsageCommand, help=video_command.HELP, epilog=video_command.EPILOG)(video_command.video)
app.command("detect", cls=PlainUsageCommand, help=detect_command.HELP, epilog=detect_command.EPILOG)(detect_command.detect)
app.command("docqa", cls=PlainUsageCommand, help=docqa_command.HELP, epilog=docqa_command.EPILOG)(docqa_command.docqa)
app.command("embed", cls=PlainUsageCommand, help=embed_command.HELP, epilog=embed_command.EPILOG)(embed_command.embed)
app.command("search", cls=PlainUsageCommand, help=search_command.HELP, epilog=search_command.EPILOG)(search_command.search)
app.command("models", cls=PlainUsageCommand, help=models_command.HELP, epilog=models_command.EPILOG)(models_command.models)
app.command("transcribe", cls=PlainUsageCommand, help=transcribe_command.HELP,
            epilog=transcribe_command.EPILOG)(transcribe_command.transcribe)
for _info in batch_command.app.registered_commands:  # batch run / collect: plain metavars like the others
    _info.cls = PlainUsageCommand
app.add_typer(batch_command.app, name="batch", help=batch_command.HELP)
app.command("chat", cls=PlainUsageCommand, help=chat_command.HELP, epilog=chat_command.EPILOG)(chat_command.chat)
for _info in logs_command.app.registered_commands:
    _info.cls = PlainUsageCommand
app.add_typer(logs_command.app, name="logs", help=logs_command.HELP)
app.command("serve", cls=PlainUsageCommand, help=serve_command.HELP, epilog=serve_command.EPILOG)(serve_command.serve)
app.command("doctor", cls=PlainUsageCommand, help=doctor_command.HELP, epilog=doctor_command.EPILOG)(doctor_command.doctor)


def _say(*lines: str) -> None:
    # The boundary's own lines: written even when stdout is gone, and never raising again.
    try:
        sys.stderr.write(for_stream("".join(line + "\n" for line in lines), sys.stderr))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def report(error: MmcliError) -> None:
    """Print an MmcliError as `mmcli: error: ...` and its hint."""
    _say(f"mmcli: error: {error.message()}", *([f"hint: {error.hint}"] if error.hint else []))


def _click_message(text: str) -> str:
    # Click writes sentences ("Missing argument 'PROMPT'."); mmcli's error lines are lower-case phrases.
    text = " ".join(text.split()).rstrip(".")
    return text[:1].lower() + text[1:]


def _usage_error(error: typer.TyperException, state: RunState) -> int:
    # Every exception Click raises is about the command line: a missing argument, a bad option
    # value, an unknown option or command.
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(error, NoArgsIsHelpError):  # bare `mmcli`: the help is the answer
        _say(error.format_message().rstrip("\n"))
        return int(ExitCode.USAGE)
    if state.debug:
        traceback.print_exc()
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else "mmcli"
    _say(f"mmcli: error: {_click_message(error.format_message())}", f"hint: see '{path} --help'")
    return int(ExitCode.USAGE)


def _stdout_closed() -> int:
    # The reader stopped early (`| head`): not an error. Point stdout at /dev/null so the
    # interpreter's final flush of what is still buffered cannot fail again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return int(ExitCode.BROKEN_PIPE)


def _interrupted() -> int:
    _say("mmcli: interrupted")
    return int(ExitCode.INTERRUPTED)


def _internal(exc: BaseException, state: RunState) -> int:
    if state.debug:
        traceback.print_exception(exc)
    _say(f"mmcli: error: internal error: {type(exc).__name__}: {exc}",
         "hint: this is a bug in mmcli; run again with --debug for the traceback and report it")
    return int(ExitCode.INTERNAL)


def _help_of(info) -> str:
    from typer.models import DefaultPlaceholder

    text = info.help
    return "" if text is None or isinstance(text, DefaultPlaceholder) else text


def _build(info):
    """The Click command (or group) Typer makes of one registered subcommand."""
    from typer.models import TyperInfo

    from .options import guard_floats

    if isinstance(info, TyperInfo):
        command = typer.main.get_group_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                                 suggest_commands=app.suggest_commands,
                                                 rich_markup_mode=app.rich_markup_mode)
    else:
        command = typer.main.get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                                   rich_markup_mode=app.rich_markup_mode)
    guard_floats(command)  # every float option of every command refuses nan and inf, in one place
    return command


def root_command() -> RootGroup:
    """The root group with the root options, its subcommands to be built when used."""
    import copy

    bare = copy.copy(app)  # the same settings and callback, without the subcommands
    bare.registered_commands, bare.registered_groups = [], []
    root = typer.main.get_command(bare)
    root.lazy = {info.name: info for info in [*app.registered_commands, *app.registered_groups]}
    return root


def _invoke(args: list[str], state: RunState) -> int:
    command = root_command()
    try:
        # standalone_mode=False: Click raises usage errors instead of printing and exiting, and
        # returns the status of `typer.Exit` (--help, --version) instead of calling sys.exit.
        status = command.main(args=args, prog_name="mmcli", standalone_mode=False, obj=state)
    except _Escaped as escaped:
        raise escaped.original from None
    return status if isinstance(status, int) else 0


def _env_debug() -> bool:
    return os.environ.get("MMCLI_DEBUG", "") not in ("", "0")


class _ClosedStream(io.TextIOBase):
    """Standard output or error started closed (`>&-`): Python leaves None there. Writing is a closed pipe."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "the stream is closed")

    def fileno(self) -> int:
        raise BrokenPipeError(errno.EPIPE, "the stream is closed")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI and return its exit status."""
    state = RunState(debug=_env_debug())
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    if sys.stderr is None:
        sys.stderr = _ClosedStream()
    try:
        with term_as_interrupt():
            return _invoke(list(sys.argv[1:] if argv is None else argv), state)
    except MmcliError as error:
        if state.debug:
            traceback.print_exc()
        report(error)
        return int(error.exit_code)
    except typer.TyperException as error:
        return _usage_error(error, state)
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted()
    except OSError as exc:
        return _stdout_closed() if _is_closed_pipe(exc) else _internal(exc, state)
    except SystemExit as exc:
        # rich answers EPIPE with SystemExit(1) raised while handling the BrokenPipeError.
        if _is_closed_pipe(exc.__context__ or exc):
            return _stdout_closed()
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # the boundary: anything else is a bug, reported as one
        return _internal(exc, state)


def run() -> None:
    """Console-script entry point."""
    code = main()
    if code == ExitCode.INTERRUPTED or any(t.daemon and t.is_alive() for t in threading.enumerate()):
        # After Ctrl-C, workers may still be on the wire or inside a native decoder (OpenCV, libjpeg):
        # finalizing the interpreter would tear them (or the decoder's own thread pool) down mid-call
        # and abort the process (SIGABRT). Every whole line is written and the sinks are closed: leave.
        import atexit
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        atexit._run_exitfuncs()  # our own clean-ups (temporary files) still run
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)
