"""`mmcli ask`: a question about any number of images (or none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..audio_options import AudioFormat, End, MaxAudioParts, MaxAudioSeconds, SampleRate, Start
from ..batch_options import with_batch_options
from ..conversation_options import Cid, Continue, conversation_to_continue, following
from ..options import with_common_options
from ..schema_options import with_schema_options

if TYPE_CHECKING:
    from mmcli.batch.work import BatchFlags
    from mmcli.settings import CommonOptions

HELP = """Ask a vision-language model about images.

INPUTS are paths, http(s) URLs, data URLs, or - for standard input; the last argument is the question. Images are resized on this machine to exactly the pixel grid the model uses, so the upload is small and the token cost is known before sending (--dry-run shows it). Audio (WAV, FLAC, MP3, Ogg/Opus, M4A, WebM) is decoded here, mixed to mono at 16 kHz and sent in parts of at most 30 seconds."""

EPILOG = """Examples:

  mmcli ask photo.jpg "what's here"

  mmcli ask a.jpg b.png "what changed between these?"

  cat photo.jpg | mmcli ask - "describe"

  mmcli ask talk.mp3 "what is the speaker's main point?" --start 1:00 --end 2:30

  mmcli ask photo.jpg "what's here" --dry-run --json"""


@with_common_options
@with_batch_options()
@with_schema_options(before="cont")
def ask(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="INPUT", show_default=False,
        help="Images, videos or audio: paths, http(s) URLs, data URLs, or - for standard input.")] = None,
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", show_default=False, help="The question.")] = ...,
    sample_rate: SampleRate = None,
    audio_format: AudioFormat = "wav",
    start_at: Start = None,
    end: End = None,
    max_audio_seconds: MaxAudioSeconds = 600.0,
    max_audio_parts: MaxAudioParts = 20,
    cont: Continue = False,
    cid: Cid = None,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Ask a vision-language model about images."""
    from mmcli.core.driver import drive
    from mmcli.core.inputs import check_question
    from ..output.show_answer import AnswerView
    from ..output.render import Output
    from mmcli.tasks.specs import TASKS, AskOptions
    from ..audio_options import audio_options

    inputs = inputs or []
    check_question(inputs, prompt, 'mmcli ask photo.jpg "what is in this picture?"')
    audio = audio_options(sample_rate, audio_format, start_at, end, max_audio_seconds, max_audio_parts)
    cid = conversation_to_continue(cont, cid, batch.each)
    out = Output(json_mode=opts.output.json)
    if batch.each:
        from mmcli.batch.run import run_each
        from mmcli.media.audio import AudioOptions

        return run_each("ask", inputs, prompt, opts, batch, out, audio=None if audio == AudioOptions() else audio)
    drive(following(TASKS["ask"], cid, opts), inputs, prompt, AskOptions(audio=audio), opts,
          AnswerView(out, TASKS["ask"]))
