"""The transcribe finisher: inputs checked and decoded first, then each file sent, printed or written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import CommonOptions
    from .media.audio import AudioOptions
    from .tasks.transcribe import Piece, TranscribeOptions


def run_transcribe(files: list[str], opts: "CommonOptions", audio: "AudioOptions", options: "TranscribeOptions",
                   *, write: bool, force: bool, extension: str) -> None:
    """Check every file, decode and split them all, then transcribe each in turn."""
    from .errors import UsageError
    from .flow import connect, open_inputs
    from .render import Output

    problems = audio.problems()
    if problems:
        raise UsageError("invalid audio options", problems[0])
    out = Output(json_mode=opts.output.json)
    opened = open_inputs(files, opts, out, allowed=("audio", "video"))
    targets = [_target(c.source, extension, force) if write else None for c in opened.checked]
    planned = [(c.source.label, _pieces(c, audio, options)) for c in opened.checked]
    if opts.output.dry_run:
        out.emit_json({"files": [_plan(label, pieces, options) for label, pieces in planned]})
        return
    started = connect(opened, opts, out)
    endpoint, model = started.ctx.target.settings.endpoint, started.ctx.target.model
    documents = []
    for (label, pieces), target in zip(planned, targets):
        from .tasks.transcribe import render, transcribe_file

        transcript = transcribe_file(endpoint, model or "", label, pieces, options, status=out.status)
        documents.append(transcript.to_dict())
        text = render(transcript, options.format)
        if target is not None:
            from .files import write_atomic

            write_atomic(target, text.encode("utf-8"), force=force)
            out.status(f"wrote {target}")
        elif not out.json_mode:
            if len(planned) > 1:
                out.line(f"==> {label} <==")
            out.line(text.rstrip("\n"))
    if out.json_mode:
        out.emit_json({"model": model, "transcripts": documents})


def _pieces(checked, audio: "AudioOptions", options: "TranscribeOptions") -> list["Piece"]:
    from .media.audio import open_audio
    from .tasks.transcribe import pieces_of

    track = checked.audio or open_audio(checked.source, what="video")
    return pieces_of(track, audio, options)


def _target(source, extension: str, force: bool) -> Path:
    """NAME.ext beside the input, checked for clobbering before anything is sent."""
    from .errors import UsageError
    from .files import check_target

    if source.path is None:
        raise UsageError("-o writes beside each input file", f"{source.label} is not a file",
                         hint="leave out -o and redirect the output instead")
    target = source.path.with_suffix(extension)
    check_target(target, force=force, inputs=[source.path])
    return target


def _plan(label: str, pieces: list["Piece"], options: "TranscribeOptions") -> dict:
    from .tasks.transcribe import wire_format

    return {"source": label, "response_format": wire_format(options.format), "language": options.language,
            "pieces": [{"start": round(p.start, 3), "end": round(p.end, 3), "bytes": len(p.data)} for p in pieces]}
