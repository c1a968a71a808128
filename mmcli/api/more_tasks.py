"""The Python API's transcribe, embed and search: the same steps as the CLI's commands, with objects back."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError

if TYPE_CHECKING:
    from ..settings import EndpointFlags
    from ..tasks.transcribe import Transcript


def _common(flags: "EndpointFlags", media: Optional[dict] = None):
    from ..settings import CommonOptions, GenerationOptions, MediaOptions, OutputOptions

    return CommonOptions(endpoint=flags, media=MediaOptions(**(media or {})), generation=GenerationOptions(),
                         output=OutputOptions())


def transcribe(flags: "EndpointFlags", files: list, language: Optional[str], prompt: Optional[str],
               max_upload_mb: float, start: Optional[float], end: Optional[float]) -> list["Transcript"]:
    """Every file transcribed through the Runner, in order; a failure raises with the finished and partial
    transcripts on `.partial`."""
    from ..events import Events
    from ..core.flow import connect, open_inputs
    from ..media.audio import AudioOptions
    from ..tasks.transcribe import TranscribeOptions, transcribe_one

    audio = AudioOptions(start=start, end=end, max_seconds=4 * 3600.0, max_parts=10 ** 9)
    audio.checked()
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
    """One record per image, page and text (source, page, kind, dims, embedding, usage), as `mmcli embed` writes;
    a failure raises with the records made before it on `.partial`."""
    from ..core.driver import Presenter, drive
    from ..tasks.embed.task import EmbedArgs
    from ..presets import choose_preset
    from ..tasks.embed.task import embed_inputs
    from ..tasks.specs import TASKS

    if not inputs and not texts:
        raise UsageError("nothing to embed", hint="give images or PDFs, or texts=[...]")
    args = EmbedArgs(inputs=list(inputs), texts=list(texts), preset=preset, batch_size=batch_size, pages=pages)
    if preset:
        choose_preset(preset, None, None)  # an unknown name is refused before anything is read
    try:
        return drive(TASKS["embed"], embed_inputs(args.inputs), "", args, _common(flags), Presenter()).records
    except BaseException as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None:
            exc.partial = partial.records  # the vectors made before the run stopped
        raise


def search(flags: "EndpointFlags", query: Optional[str], index, image, top_k: int, preset: Optional[str]):
    """The nearest rows of an index to a text or an image, as `mmcli search --json` gives them."""
    from pathlib import Path

    from ..core.driver import Presenter, drive
    from ..tasks.embed.search import SearchArgs, check_search
    from ..tasks.specs import TASKS

    args = SearchArgs(query=query, index=Path(index), image=image if image is None else _spec(image), top_k=top_k,
                      preset=preset)
    check_search(args)
    return drive(TASKS["search"], [image] if image is not None else [], query or "", args, _common(flags),
                 Presenter())


def _spec(image) -> str:
    """How the results name a query image: its path or URL, else what kind of object it was."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"({type(image).__name__})"
