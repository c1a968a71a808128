"""Errors that end a command: each carries its exit code, where it happened and a hint.

Every error class that leaves the module that raises it lives here, so one file lists what any layer may
catch. A signal raised and caught within one layer stays with its own module (net's StatusFailure and
ConnectionFailure, the history store's NoHistory, a tasks file's LineError, a task dict's TaskError, media's
AspectRatioError)."""

from __future__ import annotations

from enum import IntEnum

from .urls import masked_text


class ExitCode(IntEnum):
    """Process exit statuses; the table in README.md mirrors this."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    BAD_MEDIA = 3
    REJECTED = 4
    UNAVAILABLE = 5
    TIMEOUT = 6
    UNPARSEABLE = 7
    SOME_FAILED = 8
    OUTPUT_NOT_WRITTEN = 9
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # 128 + SIGPIPE, as other Unix tools report a closed pipe


EXIT_DESCRIPTIONS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error (a bug: run again with --debug and report it)",
    ExitCode.USAGE: "usage: bad options or arguments, bad config file, missing API key",
    ExitCode.BAD_MEDIA: "bad input media, found before anything is sent",
    ExitCode.REJECTED: "the endpoint rejected the request (HTTP 4xx)",
    ExitCode.UNAVAILABLE: ("the endpoint is unreachable, failed with 5xx after retries, or cut the stream; "
                           "or mmcli models --check did not pass"),
    ExitCode.TIMEOUT: "timeout: no answer within --timeout",
    ExitCode.UNPARSEABLE: "the model's output could not be parsed (detect --strict) or does not match --schema",
    ExitCode.SOME_FAILED: "some jobs of a many-file run failed (--each, mmcli batch); the others are done",
    ExitCode.OUTPUT_NOT_WRITTEN: "an output file could not be written (disk full, ...); the results were still shown",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.BROKEN_PIPE: "standard output was closed early (e.g. piped into head)",
}


class MmcliError(Exception):
    """Base of every expected failure: `what (where): why` plus an optional hint."""

    exit_code: ExitCode = ExitCode.INTERNAL
    partial: object = None  # Python API: what a stopped run had answered (an Answer, DocAnswer or Detections)

    def __init__(self, what: str, why: str = "", *, where: str = "", hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.where = where
        self.hint = masked_text(hint)

    def message(self) -> str:
        """The one-line description shown after `mmcli: error:` (any URL in it without its password)."""
        text = self.what
        if self.where:
            text += f" ({self.where})"
        if self.why:
            text += f": {self.why}"
        return masked_text(text)


class UsageError(MmcliError):
    """Options or arguments that cannot work together."""

    exit_code = ExitCode.USAGE


class MediaError(MmcliError):
    """An input file, URL or stream that cannot be used as media."""

    exit_code = ExitCode.BAD_MEDIA


class RequestRejected(MmcliError):
    """The endpoint answered with a 4xx status."""

    exit_code = ExitCode.REJECTED
    status_code: int = 0


class EndpointUnavailable(MmcliError):
    """The endpoint could not be reached, kept failing with 5xx, or cut the stream."""

    exit_code = ExitCode.UNAVAILABLE


class CheckFailed(MmcliError):
    """`mmcli models --check`: the server's count of the image is not the plan's, or cannot be known."""

    exit_code = ExitCode.UNAVAILABLE


class EndpointTimeout(MmcliError):
    """The endpoint did not answer within the timeout."""

    exit_code = ExitCode.TIMEOUT


class OutputUnparseable(MmcliError):
    """The model's answer could not be parsed into the structure asked for."""

    exit_code = ExitCode.UNPARSEABLE


class JobsFailed(MmcliError):
    """A many-job run finished, but some of its jobs failed (their lines in the results say why)."""

    exit_code = ExitCode.SOME_FAILED


class OutputNotWritten(MmcliError):
    """An output file could not be written after the requests succeeded (disk full, directory gone, ...)."""

    exit_code = ExitCode.OUTPUT_NOT_WRITTEN


class OutputError(UsageError):
    """An output file or directory that cannot be used as asked."""


class HistoryUnreadable(MmcliError):
    """The history database cannot be read (damaged, locked for long, or from a newer mmcli)."""

    exit_code = ExitCode.USAGE


class ServeError(EndpointUnavailable):
    """vLLM could not be found, started or stopped (exit 5, like an unreachable endpoint)."""


BAD_REPLY_HINT = ("the server answered, but not as an OpenAI-compatible endpoint would: check --base-url "
                  "(it usually ends in /v1) and the server's log")


class BadReply(EndpointUnavailable):
    """The endpoint answered, but its reply is not a valid chat completion (exit 5)."""

    def __init__(self, why: str, *, where: str = "", hint: str = BAD_REPLY_HINT) -> None:
        super().__init__("bad reply from the server", why, where=where, hint=hint)


class PartialAnswerError(MmcliError):
    """Wraps an error that struck after part of the answer had arrived (`partial`: net's ChatResult)."""

    def __init__(self, cause: MmcliError, partial: object) -> None:
        super().__init__(cause.what, cause.why, where=cause.where, hint=cause.hint)
        self.exit_code = cause.exit_code
        self.partial = partial
        self.cause = cause  # the error of its own class, for callers that tell errors apart by class


class RunStopped(Exception):
    """A run ended early (an error or Ctrl-C): the results (core's Results) of the request that stopped it, one per
    job it held, possibly partial. The results answered before are the caller's: the Runner keeps none."""

    def __init__(self, results: list, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.results = results
        self.cause = cause


class RayLines(Exception):
    """Ray's own lines while it started or joined (its C++ code writes them to the process's standard error): the
    cause of the error that follows, shown with its traceback (--debug), never caught."""

    def __init__(self, lines: list) -> None:
        super().__init__("Ray's own lines:\n" + "\n".join(lines) if lines else "Ray wrote no lines")
