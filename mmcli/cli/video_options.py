"""`mmcli video`'s sampling options, declared once as types the command's signature uses."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

SAMPLING = "Video sampling"


def _option(*names: str, **settings) -> typer.models.OptionInfo:
    return typer.Option(*names, rich_help_panel=SAMPLING, show_default=False, **settings)


Fps = Annotated[Optional[float], _option("--fps", min=0.001, metavar="RATE",
                                         help="Frames to sample per second of video. [default: 2]")]
MinFrames = Annotated[Optional[int], _option("--min-frames", min=2, metavar="N",
                                             help="Fewest frames to sample (rounded up to even). [default: 4]")]
MaxFrames = Annotated[Optional[int], _option("--max-frames", min=2, metavar="N",
                                             help="Most frames to sample (rounded down to even). [default: 768]")]
Frames = Annotated[Optional[int], _option(
    "--frames", min=2, metavar="N",
    help="Sample exactly N frames, evenly spaced (even N for --as frames); replaces --fps.")]
StartAt = Annotated[Optional[str], _option("--start", metavar="TIME",
                                           help="Start of the part to send: seconds (90.5) or [h:]mm:ss (1:30).")]
EndAt = Annotated[Optional[str], _option("--end", metavar="TIME",
                                         help="End of the part to send: seconds or [h:]mm:ss.")]
TotalPixels = Annotated[Optional[int], _option(
    "--total-pixels", min=1, metavar="N",
    help="Pixel budget shared by all frames (frame pairs for Qwen). "
         "[default: 128000*28*28*0.9; 128000*32*32*0.9 for Qwen3-VL]")]
MaxRequestMb = Annotated[float, typer.Option(
    "--max-request-mb", min=0.01, metavar="MB", rich_help_panel=SAMPLING,
    help="Largest request to send; over it, JPEG quality, then frame size, then frame count are lowered.")]
Transport = Annotated[Optional[str], _option(
    "--as", metavar="frames|images|file",
    help="How to send the video: one frame list (default for Qwen models), one image per frame with "
         "its timestamp (default for other models and OpenAI), or the original file.")]
FrameLimit = Annotated[Optional[int], _option(
    "--frame-limit", min=2, metavar="N",
    help="Frames the endpoint keeps of a frame list. [default: 32, vLLM's own; all for a server "
         "mmcli serve started; frame_limit in the profile]")]
WithAudio = Annotated[bool, typer.Option(
    "--audio", rich_help_panel="Audio",
    help="Also send the video's sound track (cut to --start/--end, 16 kHz mono) after the frames, "
         "for omni models such as Qwen2.5-Omni and Qwen3-Omni.")]

