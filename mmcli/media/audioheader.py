"""What a WAV or Ogg file's own structure says about its length, read here because FFmpeg will not tell.

FFmpeg clamps a WAV header's data size to the bytes the file holds, and takes an Ogg file's length from
its last page, so a file cut short (or a header claiming ten hours) looks whole to it. The header's own
claim, compared with the file's size, tells.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, BinaryIO, Optional

from ..errors import MediaError

if TYPE_CHECKING:
    from .sources import Source

UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # a WAV written to a pipe: the size was never filled in
MAX_CHUNKS = 4096  # chunks walked before "data"; a real file has a handful


def _opened(source: "Source") -> BinaryIO:
    if source.data is not None or source.path is None:
        return io.BytesIO(source.read())
    return open(source.path, "rb")


def _size(handle: BinaryIO) -> int:
    handle.seek(0, io.SEEK_END)
    return handle.tell()


def wav_declared(handle: BinaryIO) -> Optional[float]:
    """Seconds the WAV header's data chunk declares (None: no usable header or an unknown size)."""
    handle.seek(0)
    if handle.read(12)[8:12] != b"WAVE":
        return None
    byte_rate = None
    for _ in range(MAX_CHUNKS):
        header = handle.read(8)
        if len(header) < 8:
            return None
        name, size = header[:4], struct.unpack("<I", header[4:])[0]
        if name == b"fmt " and size >= 16:
            byte_rate = struct.unpack("<I", handle.read(16)[8:12])[0]
            handle.seek(size - 16 + (size & 1), io.SEEK_CUR)
        elif name == b"data":
            if not byte_rate or size in UNKNOWN_SIZES:
                return None
            return size / byte_rate
        else:
            handle.seek(size + (size & 1), io.SEEK_CUR)  # chunks are padded to an even length
    return None


def ogg_cut(handle: BinaryIO) -> Optional[str]:
    """Why an Ogg file is cut short (a page running past its end, a stream without its last page), or None."""
    size, position, open_streams = _size(handle), 0, set()
    while position < size:
        handle.seek(position)
        header = handle.read(27)
        if len(header) < 27 or header[:4] != b"OggS":
            break  # the pages end here: whatever follows is not a page
        flags, serial, segments = header[5], header[14:18], header[26]
        table = handle.read(segments)
        end = position + 27 + segments + sum(table)
        if len(table) < segments or end > size:
            return f"its last page is cut off ({size - position:,} of its {max(end, size + 1) - position:,} bytes)"
        if flags & 0x02:
            open_streams.add(serial)
        if flags & 0x04:
            open_streams.discard(serial)
        position = end
    if open_streams:
        return "it ends without the last page of its stream"
    return None


def checked_length(source: "Source", declared: Optional[float]) -> Optional[float]:
    """The length to trust for `source`: a WAV header's claim when it says more than FFmpeg reports (the
    decode then finds the file truncated, or the length check refuses it); a cut Ogg file is refused."""
    if source.sniffed.format not in ("wav", "ogg"):
        return declared
    with _opened(source) as handle:
        if source.sniffed.format == "ogg":
            why = ogg_cut(handle)
            if why is not None:
                raise MediaError("the audio is truncated", why, where=source.label,
                                 hint="the file was cut off; use a complete copy")
            return declared
        claimed = wav_declared(handle)
    if claimed is not None and (declared is None or claimed > declared):
        return claimed
    return declared
