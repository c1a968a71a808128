"""Pure checks on JPEG byte streams that decoders do not report reliably."""

from __future__ import annotations

# The quality every JPEG mmcli encodes is written at (images, pages, frames before fitting).
JPEG_QUALITY = 90

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_SOS = 0xDA
# Markers that stand alone, without a length field.
_STANDALONE = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8}


def jpeg_is_complete(data: bytes) -> bool:
    """Whether the main image's scan data ends with an EOI marker (False for truncated files).

    Segments are walked by their lengths up to the first scan, so an EXIF thumbnail's own
    EOI (inside APP1) is skipped; inside scan data 0xFF is always stuffed, so the first EOI
    after the first scan is the image's real end.
    """
    if not data.startswith(_SOI):
        return False
    pos = 2
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == _SOS:
            return data.find(_EOI, pos + 2 + length) != -1
        pos += 2 + length
    return False

