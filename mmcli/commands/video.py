"""`mmcli video`: a question about a video, sampled and sized on this machine within a token and byte budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..media.frames import DEFAULT_MAX_REQUEST_MB
from .batchopts import with_batch_options
from .options import with_common_options

if TYPE_CHECKING:
    from ..batch.work import BatchFlags
    from ..config import CommonOptions

SAMPLING = "Video sampling"
DEFAULT_PROMPT = "Describe this video in detail."

HELP = """Ask a vision-language model about a video.

VIDEO is a path, an http(s) URL, a data URL, or - for standard input; PROMPT defaults to a request for a detailed description. Frames are sampled at --fps (Qwen's rules: 4 to 768 frames, an even count, evenly spaced), resized on this machine to the model's grid within a total pixel budget, and sent as one frame list (vLLM, Parasail), as timestamped images (OpenAI and other endpoints) or as the original file (--as file). --dry-run shows the frames, their size and timestamps, the visual tokens and the bytes."""

EPILOG = """Examples:

  mmcli video clip.mp4

  mmcli video clip.mp4 "when does the snowman get a nose?" --start 0:30 --end 1:45

  mmcli video clip.webm --fps 1 --max-frames 64 --dry-run

  mmcli video clip.mp4 "what happens?" --frames 16 --as images"""


def _time(value: Optional[str], flag: str) -> Optional[float]:
    from ..errors import UsageError
    from ..media.frames import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise UsageError("invalid time", str(exc), where=f"{flag} {value}",
                         hint="use seconds (90, 90.5) or [h:]mm:ss (1:30, 1:02:03.5)") from None


@with_common_options
@with_batch_options()
def video(
    source: Annotated[str, typer.Argument(
        metavar="VIDEO", show_default=False,
        help="The video: a path, an http(s) URL, a data URL, or - for standard input.")],
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="The question.")] = DEFAULT_PROMPT,
    fps: Annotated[Optional[float], typer.Option(
        "--fps", min=0.001, metavar="RATE", rich_help_panel=SAMPLING, show_default=False,
        help="Frames to sample per second of video. [default: 2]")] = None,
    min_frames: Annotated[Optional[int], typer.Option(
        "--min-frames", min=2, metavar="N", rich_help_panel=SAMPLING, show_default=False,
        help="Fewest frames to sample (rounded up to even). [default: 4]")] = None,
    max_frames: Annotated[Optional[int], typer.Option(
        "--max-frames", min=2, metavar="N", rich_help_panel=SAMPLING, show_default=False,
        help="Most frames to sample (rounded down to even). [default: 768]")] = None,
    frames: Annotated[Optional[int], typer.Option(
        "--frames", min=2, metavar="N", rich_help_panel=SAMPLING, show_default=False,
        help="Sample exactly N frames, evenly spaced (even N for --as frames); replaces --fps.")] = None,
    start_at: Annotated[Optional[str], typer.Option(
        "--start", metavar="TIME", rich_help_panel=SAMPLING, show_default=False,
        help="Start of the part to send: seconds (90.5) or [h:]mm:ss (1:30).")] = None,
    end: Annotated[Optional[str], typer.Option(
        "--end", metavar="TIME", rich_help_panel=SAMPLING, show_default=False,
        help="End of the part to send: seconds or [h:]mm:ss.")] = None,
    total_pixels: Annotated[Optional[int], typer.Option(
        "--total-pixels", min=1, metavar="N", rich_help_panel=SAMPLING, show_default=False,
        help="Pixel budget shared by all frames (frame pairs for Qwen). "
             "[default: 128000*28*28*0.9; 128000*32*32*0.9 for Qwen3-VL]")] = None,
    max_request_mb: Annotated[float, typer.Option(
        "--max-request-mb", min=0.01, metavar="MB", rich_help_panel=SAMPLING,
        help="Largest request to send; over it, JPEG quality, then frame size, then frame count are lowered.")
    ] = DEFAULT_MAX_REQUEST_MB,
    transport: Annotated[Optional[str], typer.Option(
        "--as", metavar="frames|images|file", rich_help_panel=SAMPLING, show_default=False,
        help="How to send the video: one frame list (default for Qwen models), one image per frame with "
             "its timestamp (default for other models and OpenAI), or the original file.")] = None,
    frame_limit: Annotated[Optional[int], typer.Option(
        "--frame-limit", min=2, metavar="N", rich_help_panel=SAMPLING, show_default=False,
        help="Frames the endpoint keeps of a frame list. [default: 32, vLLM's own; all for a server "
             "mmcli serve started; frame_limit in the profile]")] = None,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Ask a vision-language model about a video."""
    from ..errors import UsageError
    from ..flow import start
    from ..media.frames import SamplingOptions
    from ..present import stream_answer
    from ..render import Output
    from ..tasks.ask import ask_job

    sampling = SamplingOptions(fps=fps, min_frames=min_frames, max_frames=max_frames, frames=frames,
                               start=_time(start_at, "--start"), end=_time(end, "--end"), total_pixels=total_pixels,
                               max_request_mb=max_request_mb, transport=transport,
                               frame_limit=frame_limit)
    problems = sampling.problems()
    if problems:
        raise UsageError("invalid video options", problems[0])
    if batch.each:
        from ..batch.run import run_each

        return run_each("video", [source], prompt, opts, batch, sampling)
    out = Output(json_mode=opts.output.json)
    started = start([source], opts, out, allowed=("video",))
    job = ask_job(started.checked, prompt, started.ctx, sampling)
    if opts.output.dry_run:
        out.show_plan(started.runner.plan(job))
        return
    stream_answer(started.runner, job, out)
