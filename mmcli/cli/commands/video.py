"""`mmcli video`: a question about a video, sampled and sized on this machine within a token and byte budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mmcli.limits import DEFAULT_MAX_REQUEST_MB
from mmcli.tasks import DEFAULT_VIDEO_PROMPT
from ..audio_options import AudioFormat, SampleRate
from ..options import parse_time, with_common_options
from ..video_options import (
    EndAt,
    Fps,
    FrameLimit,
    Frames,
    MaxFrames,
    MaxRequestMb,
    MinFrames,
    StartAt,
    TotalPixels,
    Transport,
    WithAudio,
)
from ..batch_options import with_batch_options
from ..conversation_options import Cid, Continue, conversation_to_continue, following
from ..schema_options import with_schema_options

if TYPE_CHECKING:
    from mmcli.batch.work import BatchFlags
    from mmcli.settings import CommonOptions

DEFAULT_PROMPT = DEFAULT_VIDEO_PROMPT

HELP = """Ask a vision-language model about a video.

VIDEO is a path, an http(s) URL, a data URL, or - for standard input; PROMPT defaults to a request for a detailed description. Frames are sampled at --fps (Qwen's rules: 4 to 768 frames, an even count, evenly spaced), resized on this machine to the model's grid within a total pixel budget, and sent as one frame list (vLLM, Parasail), as timestamped images (OpenAI and other endpoints) or as the original file (--as file). --dry-run shows the frames, their size and timestamps, the visual tokens and the bytes."""

EPILOG = """Examples:

  mmcli video clip.mp4

  mmcli video clip.mp4 "when does the snowman get a nose?" --start 0:30 --end 1:45

  mmcli video clip.webm --fps 1 --max-frames 64 --dry-run

  mmcli video clip.mp4 "what happens?" --frames 16 --as images

  mmcli video clip.mp4 "what is said, and by whom?" --audio    # omni models: frames + sound"""


@with_common_options
@with_batch_options()
@with_schema_options(before="cont")
def video(
    source: Annotated[str, typer.Argument(
        metavar="VIDEO", show_default=False,
        help="The video: a path, an http(s) URL, a data URL, or - for standard input.")],
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="The question.")] = DEFAULT_PROMPT,
    fps: Fps = None,
    min_frames: MinFrames = None,
    max_frames: MaxFrames = None,
    frames: Frames = None,
    start_at: StartAt = None,
    end: EndAt = None,
    total_pixels: TotalPixels = None,
    max_request_mb: MaxRequestMb = DEFAULT_MAX_REQUEST_MB,
    transport: Transport = None,
    frame_limit: FrameLimit = None,
    audio: WithAudio = False,
    sample_rate: SampleRate = None,
    audio_format: AudioFormat = "wav",
    cont: Continue = False,
    cid: Cid = None,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Ask a vision-language model about a video."""
    from mmcli.core.driver import drive
    from mmcli.errors import UsageError
    from mmcli.media.frames import SamplingOptions
    from ..output.show_answer import AnswerView
    from ..output.render import Output
    from mmcli.tasks.audio_parts import sound_options
    from mmcli.tasks.specs import TASKS, AskOptions

    sampling = SamplingOptions(fps=fps, min_frames=min_frames, max_frames=max_frames, frames=frames,
                               start=parse_time(start_at, "--start"), end=parse_time(end, "--end"),
                               total_pixels=total_pixels, max_request_mb=max_request_mb, transport=transport,
                               frame_limit=frame_limit)
    problems = sampling.problems()
    if problems:
        raise UsageError("invalid video options", problems[0])
    sound = sound_options(sampling, sample_rate, audio_format) if audio else None
    cid = conversation_to_continue(cont, cid, batch.each)
    if cid is not None and prompt == DEFAULT_PROMPT:
        _refuse_question_alone(source)
    out = Output(json_mode=opts.output.json)
    if batch.each:
        from mmcli.batch.run import run_each

        return run_each("video", [source], prompt, opts, batch, out, sampling, audio=sound)
    task = TASKS["video"]
    drive(following(task, cid, opts), [source], prompt, AskOptions(sampling=sampling, sound=sound), opts,
          AnswerView(out, task))


def _refuse_question_alone(source: str) -> None:
    """`video -c "question"`: the one argument is a question, not a video; a follow-up with no video is ask's."""
    import os

    from mmcli.errors import UsageError
    from mmcli.media.sources import is_url

    if source == "-" or is_url(source) or source.lower().startswith("data:") or os.path.exists(source):
        return
    raise UsageError("no video given", f"{source!r} is not a file, and video asks about a video",
                     hint=f"a follow-up about the conversation alone: mmcli ask -c {source!r}; about a video: "
                          "mmcli video -c VIDEO \"question\"")

