"""The transcribe finisher: inputs checked and decoded first, then each file sent, printed or written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions
    from mmcli.media.audio import AudioOptions
    from mmcli.tasks.transcribe import Piece, TranscribeOptions


def run_transcribe(files: list[str], opts: "CommonOptions", audio: "AudioOptions", options: "TranscribeOptions",
                   *, write: bool, force: bool, extension: str) -> None:
    """Check every file and output first; then each file is decoded, split and sent in turn, through the
    Runner, so a failure on a later piece keeps (and shows) what the earlier pieces gave."""
    from mmcli.core.flow import connect, open_inputs
    from .render import Output

    audio.checked()
    out = Output(json_mode=opts.output.json)
    opened = open_inputs(files, opts, out, allowed=("audio", "video"))
    targets = _targets(opened.checked, extension, force) if write else [None] * len(opened.checked)
    if opts.output.dry_run:
        plans = [_plan(c.source.label, _pieces(c, audio, options), options) for c in opened.checked]
        if opts.output.json:
            out.emit_json({"files": plans})
        else:
            _show_plans(out, plans)
        return
    started = connect(opened, opts, out)
    shown = _Shown(out, started.ctx.target.model, len(opened.checked))
    for checked, target in zip(opened.checked, targets):
        transcript = _transcribe_one(checked, audio, options, started, shown)
        shown.add(transcript, render_as=options.format, target=target, force=force)
    shown.close()


def _transcribe_one(checked, audio, options: "TranscribeOptions", started, shown: "_Shown"):
    """One file through the Runner; what its earlier pieces gave is shown when a later one fails."""
    from mmcli.tasks.transcribe import transcribe_one

    try:
        return transcribe_one(checked, audio, options, started.runner, started.ctx, shown.out.status)
    except BaseException as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None:
            shown.stopped(partial, options.format, exc)
        raise


class _Shown:
    """Where transcripts go: stdout (a heading each when there are several), files, or one JSON document."""

    def __init__(self, out, model, count: int) -> None:
        self.out, self.model, self.count = out, model, count
        self.documents: list[dict] = []
        self.closed = False

    def add(self, transcript, render_as: str, target=None, force: bool = False) -> None:
        """Show or write one transcript; a file that cannot be written still has its text shown."""
        from mmcli.errors import OutputNotWritten
        from mmcli.files import write_atomic
        from mmcli.tasks.transcribe import render

        self.documents.append(transcript.to_dict())
        text = render(transcript, render_as)
        if target is None:
            self._print(transcript.source, text)
            return
        try:
            write_atomic(target, text.encode("utf-8"), force=force)
        except OutputNotWritten:
            self._print(transcript.source, text)  # paid for: shown, then exit 9
            self.close()
            raise
        self.out.status(f"wrote {target}")

    def stopped(self, partial, render_as: str, cause: BaseException) -> None:
        """A piece failed (or Ctrl-C): what the earlier pieces gave is shown before the error."""
        from .show_answer import reason

        done = partial.answered
        if done:
            self.documents.append(partial.to_dict())
            self.out.warn(f"{partial.source}: stopped at piece {done + 1} of {partial.pieces}; the text of the "
                          f"first {done} is printed")
            if not self.out.json_mode:
                from mmcli.tasks.transcribe import render

                self.out.line(render(partial, render_as).rstrip("\n"))
        if self.out.json_mode:
            self.out.emit_json({"model": self.model, "transcripts": self.documents, "error": reason(cause)})

    def close(self) -> None:
        """--json: every transcript in one document."""
        if self.out.json_mode and not self.closed:
            self.out.emit_json({"model": self.model, "transcripts": self.documents})
        self.closed = True

    def _print(self, label: str, text: str) -> None:
        if self.out.json_mode:
            return
        if self.count > 1:
            self.out.line(f"==> {label} <==")
        self.out.line(text.rstrip("\n"))


def _targets(checked: list, extension: str, force: bool) -> list[Path]:
    """Every output file checked before anything is sent; two inputs may not write the same file."""
    from mmcli.errors import UsageError

    targets = [_target(c.source, extension, force) for c in checked]
    seen: dict = {}
    for c, target in zip(checked, targets):
        key = target.resolve()
        if key in seen:
            raise UsageError("two inputs would write the same output file", f"{seen[key]} and {c.source.label}",
                             where=str(target), hint="transcribe them one at a time, or rename one")
        seen[key] = c.source.label
    return targets


def _pieces(checked, audio: "AudioOptions", options: "TranscribeOptions") -> list["Piece"]:
    from mmcli.media.audio import open_audio
    from mmcli.tasks.transcribe import pieces_of

    track = checked.audio or open_audio(checked.source, what="video")
    return pieces_of(track, audio, options)


def _target(source, extension: str, force: bool) -> Path:
    """NAME.ext beside the input, checked for clobbering before anything is sent."""
    from mmcli.errors import UsageError
    from mmcli.files import check_target

    if source.path is None:
        raise UsageError("-o writes beside each input file", f"{source.label} is not a file",
                         hint="leave out -o and redirect the output instead")
    target = source.path.with_suffix(extension)
    check_target(target, force=force, inputs=[source.path])
    return target


def _show_plans(out, plans: list[dict]) -> None:
    """The pieces each file would be uploaded in, as lines (--json gives the same as one object)."""
    for plan in plans:
        language = plan["language"] or "detected by the model"
        out.line(f"{plan['source']}: {len(plan['pieces'])} piece(s), as {plan['response_format']}, "
                 f"language {language}")
        for number, piece in enumerate(plan["pieces"], 1):
            out.line(f"  piece {number}: {piece['start']:.1f}-{piece['end']:.1f} s, {piece['bytes']:,} bytes")
    out.line("(nothing sent)")


def _plan(label: str, pieces: list["Piece"], options: "TranscribeOptions") -> dict:
    from mmcli.tasks.transcribe import wire_format

    return {"source": label, "response_format": wire_format(options.format), "language": options.language,
            "pieces": [{"start": round(p.start, 3), "end": round(p.end, 3), "bytes": len(p.data)} for p in pieces]}
