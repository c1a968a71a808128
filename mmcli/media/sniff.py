"""Telling what a file is from its first bytes, never from its name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sniffed:
    """What the leading bytes say a file is."""

    kind: str  # image | video | pdf | audio | unknown
    format: str  # short name: jpeg, png, mp4, heic, ...
    mime: str
    description: str

    @property
    def a_description(self) -> str:
        """The description after "it is": "an MPEG-4 video", "a JPEG image", "unrecognised data"."""
        if self.kind == "unknown":
            return self.description  # a mass noun: "it is unrecognised data"
        return f"{'an' if self.description.startswith(_VOWEL_SOUND) else 'a'} {self.description}"


# Descriptions whose spoken first sound is a vowel (by sound, not by letter: "a JPEG", "an MP3").
_VOWEL_SOUND = ("AVI", "MPEG", "MP3", "Ogg", "AAC", "AIFF", "image", "audio")


_IMAGE_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_QUICKTIME_BRANDS = {b"qt  "}

UNKNOWN = Sniffed("unknown", "unknown", "application/octet-stream", "unrecognised data")

# The names the files sniffed below go by, per kind (lower case): what a folder's media files are called.
SUFFIXES = {"image": (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"),
            "video": (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".3gp"), "pdf": (".pdf",),
            "audio": (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".aac", ".aif", ".aiff", ".aifc", ".m4a",
                      ".m4b")}


def _ftyp(head: bytes) -> Sniffed:
    brand = head[8:12]
    if brand in _IMAGE_HEIF_BRANDS:
        return Sniffed("image", "heic", "image/heic", "HEIC/HEIF image")
    if brand in _AVIF_BRANDS:
        return Sniffed("image", "avif", "image/avif", "AVIF image")
    if brand in _QUICKTIME_BRANDS:
        return Sniffed("video", "mov", "video/quicktime", "QuickTime video")
    if brand.startswith(b"M4A") or brand == b"M4B ":
        return Sniffed("audio", "m4a", "audio/mp4", "MPEG-4 audio")
    if brand.startswith(b"3g"):
        return Sniffed("video", "3gp", "video/3gpp", "3GPP video")
    return Sniffed("video", "mp4", "video/mp4", "MPEG-4 video")


def sniff(head: bytes) -> Sniffed:
    """Identify a file from its first 64 or so bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg", "image/jpeg", "JPEG image")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png", "image/png", "PNG image")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif", "image/gif", "GIF image")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp", "image/webp", "WebP image")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", "avi", "video/x-msvideo", "AVI video")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "wav", "audio/wav", "WAV audio")
    if head.startswith(b"BM") and len(head) >= 26:
        return Sniffed("image", "bmp", "image/bmp", "BMP image")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "tiff", "image/tiff", "TIFF image")
    if head[4:8] == b"ftyp":
        return _ftyp(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        is_webm = b"webm" in head[:64]
        return Sniffed("video", "webm" if is_webm else "mkv", "video/webm" if is_webm else "video/x-matroska",
                       "WebM video" if is_webm else "Matroska video")
    if head.startswith(b"%PDF-"):
        return Sniffed("pdf", "pdf", "application/pdf", "PDF document")
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return Sniffed("audio", "mp3", "audio/mpeg", "MP3 audio")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "flac", "audio/flac", "FLAC audio")
    if head.startswith(b"OggS"):
        return Sniffed("audio", "ogg", "audio/ogg", "Ogg audio")
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):  # ADTS frame sync, MPEG-4 or MPEG-2, no CRC
        return Sniffed("audio", "aac", "audio/aac", "AAC audio")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("audio", "aiff", "audio/aiff", "AIFF audio")
    return UNKNOWN
