"""`mmcli models`: what the endpoint serves, the family mmcli uses for each model, and a calibration check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..options import with_endpoint_options

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

HELP = """List the models the endpoint serves.

For each model: its id, its root (what the server loaded), the family mmcli sizes images for and why (flag, profile, id, root or default), and its context length; for vLLM also the server's version. With --check, one small synthetic image and the same question without it are sent to the model (--model, else the first one), and the server's count of the image's visual tokens is compared with the plan; the exit status is 5 unless they agree. One small request under a JSON Schema also says whether structured output (--schema, detect's guided boxes) works; that finding is reported, not a failure."""

EPILOG = """Examples:

  mmcli models

  mmcli models --base-url http://127.0.0.1:8000/v1 --json

  mmcli models --check"""

COLUMNS = ("id", "root", "family", "from", "max_model_len")


@with_endpoint_options
def models(
    check: Annotated[bool, typer.Option(
        "--check", help="Send one synthetic image and one text-only request; say whether the server's "
                        "visual token count equals the plan, and if not, which setting differs (exit 5).")] = False,
    opts: "CommonOptions" = None,
) -> None:
    """List the models the endpoint serves."""
    from mmcli.settings import resolve_settings
    from mmcli.urls import masked_url
    from mmcli.core.endpoint import served_models, target_for
    from mmcli.errors import RequestRejected, UsageError
    from ..output.render import Output

    out = Output(json_mode=opts.output.json)
    settings, found, rows = served_models(resolve_settings(opts.endpoint), out)
    where = masked_url(settings.endpoint.base_url)
    payload = {"base_url": where, "vllm_version": found.version, "models": [row.to_dict() for row in rows]}
    if not out.json_mode:
        _show_table(out, where, found.version, rows)
    if check:
        if not rows:
            raise RequestRejected("the endpoint serves no models", where=where, hint="nothing to check")
        row = next((r for r in rows if settings.model in (None, r.id)), None)
        if row is None:
            raise UsageError("the endpoint does not serve this model", where=settings.model or "",
                             hint="served: " + ", ".join(r.id for r in rows))
        from mmcli.tasks.calibrate import calibrate

        result = calibrate(target_for(settings, row), opts.media, out, vllm=found.is_vllm)
        payload["check"] = result.to_dict()
        from mmcli.tasks.structured_check import check_structured

        payload["structured_output"] = structured = check_structured(target_for(settings, row), out)
        if not out.json_mode:
            out.line(f"check {row.id}: {result.finding}")
            out.line(f"structured output: {structured['finding']}")
    if out.json_mode:
        out.emit_json(payload)
    if check and not result.matches:
        from mmcli.errors import CheckFailed

        raise CheckFailed("the check did not pass", result.finding, where=row.id,
                          hint="change the setting it names (or the server's), then run mmcli models --check again")


def _show_table(out, where: str, version, rows) -> None:
    """A plain table, columns padded to their widest cell."""
    out.line(f"endpoint: {where}" + (f"  (vLLM {version})" if version else ""))
    cells = [COLUMNS] + [(r.id, r.root or "-", r.family, r.family_source,
                          f"{r.max_model_len:,}" if r.max_model_len else "-") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        out.line("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not rows:
        out.line("(no models)")
