"""Where media comes from: paths, standard input, http(s) URLs and data URLs, checked before use."""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union, BinaryIO, Callable, Optional
from urllib.parse import unquote_to_bytes

from ..errors import MediaError, UsageError
from ..urls import masked_url
from .sniff import Sniffed, sniff

MiB = 1024 * 1024
# Size caps per kind, checked before a byte is read.
MAX_BYTES = {"image": 64 * MiB, "pdf": 512 * MiB, "video": 4096 * MiB, "audio": 512 * MiB, "unknown": 64 * MiB}
MAX_STREAM_BYTES = 512 * MiB  # stdin and downloads, whose kind is known only once read
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
FetchFn = Callable[[str, int], tuple[bytes, str]]


@dataclass
class Source:
    """One input as the user named it, its kind sniffed from its bytes; contents read lazily."""

    label: str
    sniffed: Sniffed
    path: Optional[Path] = None
    data: Optional[bytes] = None
    url: Optional[str] = None  # sent unchanged (--pass-url)

    def read(self) -> bytes:
        """The whole contents, size-capped by kind."""
        if self.data is not None:
            return self.data
        if self.path is None:
            raise MediaError("no data", where=self.label)
        cap = MAX_BYTES.get(self.sniffed.kind, MAX_BYTES["unknown"])
        with open(self.path, "rb") as handle:
            data = handle.read(cap + 1)
        if len(data) > cap:
            raise MediaError("file too large", f"over the {cap // MiB} MiB limit for {self.sniffed.kind}",
                             where=self.label)
        self.data = data
        return data


def is_url(spec: str) -> bool:
    """Whether an input names an http(s) URL."""
    return spec.lower().startswith(("http://", "https://"))


def open_sources(specs: list[str], *, fetch: FetchFn, pass_url: bool = False,
                 stdin: Optional[BinaryIO] = None) -> list[Source]:
    """Check and open every input; errors name the input and the cause."""
    if specs.count("-") > 1:
        raise UsageError("standard input can be read only once", where="-", hint="pass '-' at most once")
    return [open_source(spec, fetch=fetch, pass_url=pass_url, stdin=stdin) for spec in specs]


def open_source(spec: Union[str, bytes], *, fetch: FetchFn, pass_url: bool = False,
                stdin: Optional[BinaryIO] = None) -> Source:
    """One input: '-', a data URL, an http(s) URL, a path, or bytes given in memory."""
    if isinstance(spec, bytes):
        return _from_bytes(spec, "<bytes>")
    if spec == "-":
        return _from_stdin(stdin)
    if spec.lower().startswith("data:"):
        return _from_data_url(spec)
    if is_url(spec):
        # The label is what plans, progress, results and errors show: never the URL's password.
        label = masked_url(spec)
        if pass_url:
            return Source(label=label, sniffed=_sniff_url_name(spec), url=spec)
        data, final = fetch(spec, MAX_STREAM_BYTES)
        return _from_bytes(data, label if final == spec else f"{label} -> {masked_url(final)}")
    if _URL_SCHEME.match(spec) and not os.path.exists(spec):
        scheme = spec.split(":", 1)[0]
        raise MediaError("unsupported URL scheme", f"{scheme}:// is not fetched", where=masked_url(spec),
                         hint="use an http(s) URL, a data URL or a local path")
    return _from_path(Path(spec), spec)


def _from_bytes(data: bytes, label: str) -> Source:
    if not data:
        raise MediaError("input is empty", where=label)
    return Source(label=label, sniffed=sniff(data[:64]), data=data)


def _from_stdin(stdin: Optional[BinaryIO]) -> Source:
    # Python sets sys.stdin to None when file descriptor 0 is closed (`mmcli ask - q <&-`).
    stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if stream is None or stream.closed:
        raise MediaError("standard input is closed", where="-",
                         hint="pipe a file in (... - < photo.jpg) or name the file instead of '-'")
    if stream.isatty():
        raise UsageError("standard input is a terminal", where="-", hint="pipe a file in: cat photo.jpg | mmcli ask - ...")
    data = stream.read(MAX_STREAM_BYTES + 1)
    if len(data) > MAX_STREAM_BYTES:
        raise MediaError("input too large", f"over the {MAX_STREAM_BYTES // MiB} MiB limit", where="stdin")
    return _from_bytes(data, "stdin")


def _from_data_url(spec: str) -> Source:
    label = spec[:40] + ("..." if len(spec) > 40 else "")
    header, sep, payload = spec.partition(",")
    if not sep:
        raise MediaError("invalid data URL", "no ',' before the data", where=label)
    try:
        if header.lower().endswith(";base64"):
            data = base64.b64decode(payload, validate=True)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("invalid data URL", f"bad base64: {exc}", where=label) from None
    return _from_bytes(data, label)


def _sniff_url_name(url: str) -> Sniffed:
    name = url.split("?")[0].lower()
    for ext, kind in ((".mp4", "video"), (".webm", "video"), (".mov", "video"), (".pdf", "pdf")):
        if name.endswith(ext):
            return Sniffed(kind, ext[1:], f"{kind}/{ext[1:]}", f"{kind} URL")
    return Sniffed("image", "url", "image/*", "image URL")


_FILE_TYPES = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]


def _from_path(path: Path, label: str) -> Source:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MediaError("cannot read input", "no such file", where=label, hint="check the path") from None
    except OSError as exc:
        raise MediaError("cannot read input", exc.strerror or str(exc), where=label) from None
    if stat.S_ISDIR(info.st_mode):
        raise MediaError("cannot read input", "it is a directory", where=label,
                         hint=f"add --each to ask about each file in it, one answer per file (ask, video, docqa, "
                              f"detect), or pass the files inside it, e.g. {label.rstrip('/')}/*.jpg")
    if not stat.S_ISREG(info.st_mode):
        what = next((name for test, name in _FILE_TYPES if test(info.st_mode)), "not a regular file")
        raise MediaError("cannot read input", f"it is {what}, not a regular file", where=label,
                         hint="use '-' to read from standard input")
    if info.st_size == 0:
        raise MediaError("cannot read input", "the file is empty", where=label)
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise MediaError("cannot read input", exc.strerror or str(exc), where=label) from None
    sniffed = sniff(head)
    cap = MAX_BYTES.get(sniffed.kind, MAX_BYTES["unknown"])
    if info.st_size > cap:
        raise MediaError("file too large", f"{info.st_size / MiB:.0f} MiB, over the {cap // MiB} MiB limit "
                         f"for {sniffed.kind} files", where=label)
    return Source(label=label, sniffed=sniffed, path=path)
