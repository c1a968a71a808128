"""The Python API's transcribe, embed and search: the same steps as the CLI's commands, with objects back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .errors import UsageError

if TYPE_CHECKING:
    from .config import EndpointFlags
    from .tasks.transcribe import Transcript


def _common(flags: "EndpointFlags", media: Optional[dict] = None):
    from .config import CommonOptions, GenerationOptions, MediaOptions, OutputOptions

    return CommonOptions(endpoint=flags, media=MediaOptions(**(media or {})), generation=GenerationOptions(),
                         output=OutputOptions())


def transcribe(flags: "EndpointFlags", files: list, language: Optional[str], prompt: Optional[str],
               max_upload_mb: float, start: Optional[float], end: Optional[float]) -> list["Transcript"]:
    """Every file transcribed through the Runner, in order; a failure raises with the finished and partial
    transcripts on `.partial`."""
    from .events import Events
    from .flow import connect, open_inputs
    from .media.audio import AudioOptions
    from .tasks.transcribe import TranscribeOptions, transcribe_one

    if max_upload_mb <= 0:
        raise UsageError("max_upload_mb must be above 0", f"got {max_upload_mb}")
    audio = AudioOptions(start=start, end=end, max_seconds=4 * 3600.0, max_parts=10 ** 9)
    problems = audio.problems()
    if problems:
        raise UsageError("invalid audio options", problems[0])
    options = TranscribeOptions(format="json", language=language, prompt=prompt,
                                max_upload_bytes=int(max_upload_mb * 1_000_000))
    events, common = Events(), _common(flags)
    opened = open_inputs(files, common, events, allowed=("audio", "video"))
    started = connect(opened, common, events)
    done: list = []
    for checked in opened.checked:
        try:
            done.append(transcribe_one(checked, audio, options, started.runner, started.ctx))
        except BaseException as exc:
            partial = getattr(exc, "partial", None)
            exc.partial = done + ([partial] if partial is not None else [])
            raise
    return done


def embed(flags: "EndpointFlags", inputs: list, texts: list[str], preset: Optional[str], batch_size: int,
          pages: Optional[str]) -> list[dict]:
    """One record per image, page and text (source, page, kind, dims, embedding, usage), as `mmcli embed` writes."""
    from .embedding.command import choose_preset
    from .embedding.jobs import EmbedOptions
    from .embedding.run import batch_stream, count_jobs, embed_all, job_stream
    from .embedding.sources import expand_folders
    from .events import Events
    from .flow import connect, open_inputs
    from .limits import DEFAULT_MAX_PAGES
    from .media.document import select_pages

    if not inputs and not texts:
        raise UsageError("nothing to embed", hint="give images or PDFs, or texts=[...]")
    if batch_size < 1:
        raise UsageError("batch_size must be at least 1", f"got {batch_size}")
    events, common = Events(), _common(flags)
    opened = open_inputs(expand_folders([str(i) for i in inputs]), common, events, allowed=("image", "pdf"))
    selected = select_pages(opened.checked, pages, None, DEFAULT_MAX_PAGES) if opened.checked else []
    started = connect(opened, common, events)
    chosen = choose_preset(preset, None, started.ctx.target.model)
    options = EmbedOptions(chosen, batch_size, pages, None, DEFAULT_MAX_PAGES)
    from .runner import RunStopped

    records: list[dict] = []
    stream = batch_stream(job_stream(selected, list(texts), chosen, started.ctx), batch_size)
    try:
        embed_all(started.runner, stream, count_jobs(selected, list(texts)), options.batch_size, chosen, events,
                  lambda result, vector, record: records.append(record))
    except RunStopped as stopped:
        cause = stopped.cause
        cause.partial = records  # the vectors made before the run stopped
        raise cause from None
    return records
