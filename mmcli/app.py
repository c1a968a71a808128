"""The root command and the one error boundary: MmcliError -> one line (+ hint) -> exit code."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Optional, Sequence

import typer

from . import __version__
from .commands.ask import EPILOG as ASK_EPILOG
from .commands.ask import HELP as ASK_HELP
from .commands.ask import ask
from .commands import detect as detect_command
from .commands import docqa as docqa_command
from .commands import serve as serve_command
from .commands import video as video_command
from .errors import ExitCode, MmcliError

EXAMPLES = """Examples:

  mmcli ask photo.jpg "what's here"

  mmcli ask photo.jpg "what's here" --dry-run"""

app = typer.Typer(
    name="mmcli",
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
        print(f"mmcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Ask vision-language models about your images, videos and documents."""


app.command("ask", help=ASK_HELP, epilog=ASK_EPILOG)(ask)
app.command("video", help=video_command.HELP, epilog=video_command.EPILOG)(video_command.video)
app.command("detect", help=detect_command.HELP, epilog=detect_command.EPILOG)(detect_command.detect)
app.command("docqa", help=docqa_command.HELP, epilog=docqa_command.EPILOG)(docqa_command.docqa)
app.command("serve", help=serve_command.HELP, epilog=serve_command.EPILOG)(serve_command.serve)


def _debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("MMCLI_DEBUG", "") not in ("", "0")


def _stdout_was_closed() -> bool:
    # Typer answers EPIPE on stdout (e.g. `mmcli ... | head`) by swapping in this wrapper and
    # exiting 1; a reader that stopped early is not a bug, so it gets its own status.
    return type(sys.stdout).__name__ == "PacifyFlushWrapper"


def report(error: MmcliError) -> None:
    """Print an MmcliError as `mmcli: error: ...` and its hint."""
    print(f"mmcli: error: {error.message()}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI and return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="mmcli", standalone_mode=True)
    except SystemExit as exc:
        if _stdout_was_closed():
            return int(ExitCode.BROKEN_PIPE)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MmcliError as error:
        if debug:
            traceback.print_exc()
        report(error)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("mmcli: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # the boundary: anything else is a bug, reported as one
        if debug:
            traceback.print_exc()
        print(f"mmcli: error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: this is a bug in mmcli; run again with --debug for the traceback and report it",
              file=sys.stderr)
        return int(ExitCode.INTERNAL)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
