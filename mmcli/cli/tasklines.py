"""A tasks-file line's parsed parameters turned into what the jobs need: options, task options, prompt."""

from __future__ import annotations

from ..errors import UsageError


def task_parts(command: str, params: dict, given: set[str]) -> dict:
    """{"__opts__": CommonOptions, "__task__": the command's own options, "__audio__": how audio is sent
    (ask: its audio inputs; video: its sound track, or None), "__prompt__", "__given__"}."""
    from .options import _common_from

    opts = _common_from(params)
    if params.get("schema"):  # a line's own --schema (ask, video, docqa)
        from dataclasses import replace

        from ..schema import load_schema

        opts = replace(opts, generation=replace(opts.generation, schema=load_schema(params["schema"])))
    builders = {"ask": _ask, "video": _video, "docqa": _docqa, "detect": _detect}
    task, prompt = builders[command](params)
    if prompt is None or not str(prompt).strip():
        raise UsageError("the line has no prompt", "give one as \"prompt\"")
    return {"__opts__": opts, "__task__": task, "__audio__": _audio(command, params, task), "__prompt__": prompt,
            "__given__": given}


def _audio(command: str, params: dict, task):
    """The line's audio options, as its command line would make them."""
    from ..media.audio import AudioOptions

    if command == "ask":
        from .audio_options import audio_options

        audio = audio_options(params["sample_rate"], params["audio_format"], params["start_at"], params["end"],
                              params["max_audio_seconds"], params["max_audio_parts"])
        return None if audio == AudioOptions() else audio
    if command == "video" and params["audio"]:
        from ..tasks.audio_parts import sound_options

        return sound_options(task, params["sample_rate"], params["audio_format"])
    return None


def _ask(params: dict):
    return None, params.get("prompt")


def _time(value, flag: str):
    from ..media.frames import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise UsageError("invalid time", str(exc), where=f"{flag} {value}") from None


def _video(params: dict):
    from ..media.frames import SamplingOptions

    sampling = SamplingOptions(fps=params["fps"], min_frames=params["min_frames"], max_frames=params["max_frames"],
                               frames=params["frames"], start=_time(params["start_at"], "--start"),
                               end=_time(params["end"], "--end"), total_pixels=params["total_pixels"],
                               max_request_mb=params["max_request_mb"], transport=params["transport"],
                               frame_limit=params["frame_limit"])
    problems = sampling.problems()
    if problems:
        raise UsageError("invalid video options", problems[0])
    return sampling, params.get("prompt")


def _docqa(params: dict):
    from ..tasks.docqa import DocOptions

    return DocOptions(pages=params["pages"], dpi=params["dpi"], with_text=params["with_text"],
                      pages_per_request=params["pages_per_request"], per_page=params["per_page"],
                      password_env=params["password_env"], max_pages=params["max_pages"]), params.get("question")


def _detect(params: dict):
    from ..tasks.detect.jobs import DetectOptions

    coords = params["coords"]
    return DetectOptions(target=params["target"], points=params["points"],
                         coords=getattr(coords, "value", coords), pages=params["pages"],
                         password_env=params["password_env"], max_pages=params["max_pages"],
                         guided=params.get("guided")), params.get("target")
