"""Errors that end a command: each carries its exit code, where it happened and a hint."""

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
