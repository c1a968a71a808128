"""`mmcli doctor`: one line per check of this machine and its endpoint, with what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..options import with_endpoint_options

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

HELP = """Check what this machine has for asking a model about a file, one line per check.

Python and mmcli; a GPU (driver) or none; vLLM (where, GPU or CPU build, version); poppler for PDFs; PyAV for audio; the config file; the state folder; a server mmcli started; the API key for the profile (present or not, never shown); and the endpoint (reachable, models, family, context length, structured output). Each problem comes with what to do. Exit status 0 when the main job can run as configured, else the status a command would end with (2 configuration, 5 unreachable)."""

EPILOG = """Examples:

  mmcli doctor

  mmcli doctor --profile parasail

  mmcli doctor --json"""

MARKS = {"ok": "ok  ", "info": "--  ", "warn": "warn", "fail": "FAIL"}


@with_endpoint_options
def doctor(opts: "CommonOptions" = None) -> None:
    """Check this machine and the endpoint."""
    import os

    import typer

    from mmcli.tasks.doctor_run import exit_status, run_checks
    from ..output.render import Output

    out = Output(json_mode=opts.output.json)
    checks = run_checks(opts.endpoint, os.environ)
    code = exit_status(checks)
    if out.json_mode:
        out.emit_json({"checks": [c.to_dict() for c in checks], "exit_code": code})
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            out.line(f"{MARKS[check.status]}  {check.name:<{width}}  {check.detail}")
            if check.fix and check.status != "ok":
                out.line(f"      {'':<{width}}  -> {check.fix}")
    if code:
        raise typer.Exit(code)
