"""The input step: every input opened and checked before anything is sent anywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import MediaError, UsageError
from ..media.checked import CheckedInput  # defined with the media it holds; the input step makes it
from ..media.image import check_aspect, open_image
from ..media.sources import Source, open_sources

if TYPE_CHECKING:
    from ..settings import MediaOptions

WarnFn = Callable[[str], None]


def read_inputs(specs: list, media: "MediaOptions", timeout: float, warn: WarnFn,
                allowed: tuple[str, ...] = ("image",)) -> list[CheckedInput]:
    """Read every input (paths, URLs, bytes, PIL images, arrays) and check it before anything is sent:
    URLs are downloaded, types sniffed, images opened (decoded unless a JPEG can wait), videos probed."""
    from ..net import download

    sources = open_sources([_as_spec(spec) for spec in specs], pass_url=media.pass_url,
                           fetch=lambda url, cap: download.fetch_url(url, cap, timeout))
    checked = []
    for source in sources:
        if _sound_only(source, allowed):
            from ..media.audio import open_audio

            checked.append(CheckedInput(source, audio=open_audio(source)))
            continue
        refuse_unsupported(source, allowed)
        if source.sniffed.kind == "video" and source.url is None:
            from ..media.videodecode import open_video  # a question without a video never loads the video reader

            checked.append(CheckedInput(source, video=open_video(source)))
            continue
        if source.url is not None or source.sniffed.kind == "pdf":  # PDFs are opened by the command
            checked.append(CheckedInput(source))
            continue
        image = open_image(source.read(), source.label)
        check_aspect(image)
        for note in image.warnings:
            warn(note)
        checked.append(CheckedInput(source, image))
    return checked


def _sound_only(source: Source, allowed: tuple[str, ...]) -> bool:
    """Audio files, and containers such as WebM or MP4 that hold sound but no pictures, when audio is allowed."""
    if "audio" not in allowed or source.url is not None:
        return False
    if source.sniffed.kind == "audio":
        return True
    if source.sniffed.kind != "video":
        return False
    from ..media.audio import has_video_stream

    return not has_video_stream(source)


def check_question(inputs: list[str], question: str, usage: str) -> None:
    """Refuse an empty question, or a lone input that was meant as media but left no question."""
    import os

    from ..media.sources import is_url

    looks_like_input = question == "-" or is_url(question) or question.lower().startswith("data:") \
        or os.path.exists(question)
    if not inputs and looks_like_input:
        raise UsageError("no question given", f"{question!r} is an input, and the last argument is the question",
                         hint=usage)
    if not question.strip():
        raise UsageError("the question is empty", hint=usage)


def refuse_unsupported(source: Source, allowed: tuple[str, ...]) -> None:
    """A clear error for inputs of a kind this command cannot send."""
    sniffed = source.sniffed
    undecodable = sniffed.format == "heic" or (sniffed.format == "avif" and not _pillow_reads_avif())
    if sniffed.kind == "image" and undecodable:
        raise MediaError("unsupported image format", f"it is {sniffed.a_description}, which mmcli cannot decode",
                         where=source.label, hint="convert it to JPEG or PNG first")
    if sniffed.kind in allowed:
        return
    if sniffed.kind == "unknown":
        kinds = [_KIND_FORMATS[kind] for kind in allowed if kind in _KIND_FORMATS]
        raise MediaError("not a supported media file", _unknown_reason(source, allowed), where=source.label,
                         hint="pass " + " or ".join(kinds or [_KIND_FORMATS["image"]]))
    hint = 'ask about PDF pages with: mmcli docqa FILE.pdf "question"' if sniffed.kind == "pdf" else ""
    raise MediaError("unsupported input", f"it is {sniffed.a_description}; this command takes "
                     + " or ".join(allowed) + " inputs", where=source.label, hint=hint)


def _pillow_reads_avif() -> bool:
    from PIL import features

    return bool(features.check("avif"))


_KIND_NAMES = {"image": "an image", "video": "a video", "pdf": "a PDF", "audio": "audio"}
_KIND_FORMATS = {"image": "a JPEG, PNG, WebP, GIF, BMP or TIFF image", "video": "an MP4, MOV, WebM, MKV or AVI video",
                 "pdf": "a PDF document", "audio": "a WAV, FLAC, MP3, Ogg/Opus, M4A/AAC or WebM audio file"}


def _unknown_reason(source: Source, allowed: tuple[str, ...] = ("image",)) -> str:
    head = source.data[:512] if source.data is not None else _head(source)
    kinds = " or ".join(_KIND_NAMES.get(kind, kind) for kind in allowed)
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it looks like text, not {kinds}"
    return f"the bytes are not a known {' or '.join(allowed)} format"


def _head(source: Source) -> bytes:
    if source.path is None:
        return b""
    with open(source.path, "rb") as handle:
        return handle.read(512)


def _as_spec(spec):
    """Paths and strings pass through; bytes, PIL images and RGB numpy arrays become encoded bytes."""
    if isinstance(spec, (str, bytes)):
        return spec
    if hasattr(spec, "__fspath__"):
        import os

        return os.fspath(spec)
    return _encode_picture(spec)


def _encode_picture(picture) -> bytes:
    """PNG bytes of a PIL image or an RGB (H, W, 3) / grey (H, W) uint8 array."""
    import io

    from PIL import Image

    if not isinstance(picture, Image.Image):
        if not hasattr(picture, "__array__") and not hasattr(picture, "__array_interface__"):
            # None, numbers, dicts...: not pictures at all, whatever numpy would make of them
            raise UsageError("unsupported input", f"a value of type {type(picture).__name__}",
                             hint="pass a path, a URL, bytes, a PIL image or an RGB uint8 array")
        import numpy as np

        array = np.asarray(picture)
        if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
            raise UsageError("unsupported input", f"an array of shape {array.shape} and type {array.dtype}",
                             hint="pass an RGB uint8 array of shape (height, width, 3)")
        if 0 in array.shape[:2]:
            raise UsageError("unsupported input", f"an empty picture: an array of shape {array.shape}",
                             hint="pass an array with at least one row and one column")
        picture = Image.fromarray(array)
    if 0 in picture.size:
        raise UsageError("unsupported input", f"an empty picture of {picture.size[0]}x{picture.size[1]} pixels")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
