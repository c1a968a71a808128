"""A local Whisper-style endpoint: POST /v1/audio/transcriptions (multipart) answered from the audio it got.

Each upload is parsed, its WAV decoded and recorded; the reply names the upload's number and length, so
tests can check how pieces were cut and how their texts and timestamps were joined. Stdlib only.
"""

from __future__ import annotations

import io
import threading
from typing import Optional
import wave
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from .scripted_server import LocalServer, QuietHandler

MODEL = "whisper-tiny-test"


@dataclass
class Upload:
    """One transcription request as received."""

    fields: dict[str, str]
    filename: str
    content_type: str
    audio: bytes = field(repr=False)
    rate: int = 0
    channels: int = 0
    frames: int = 0

    @property
    def seconds(self) -> float:
        """Length of the uploaded audio."""
        return self.frames / self.rate if self.rate else 0.0


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, str, bytes]]:
    """(text fields, (file name, file content type, file bytes)) of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields, upload = {}, ("", "", b"")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            upload = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
        else:
            fields[name] = part.get_payload(decode=True).decode("utf-8")
    return fields, upload


class _Handler(QuietHandler):

    def do_GET(self):
        """Serve /v1/models."""
        if self.path.split("?")[0] != "/v1/models":
            self._send_json(404, {"detail": "Not Found"})
            return
        data = [{"id": MODEL, "object": "model", "root": "openai/whisper-tiny", "max_model_len": 448}]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self):
        """Serve /v1/audio/transcriptions."""
        body = self._read_body()
        if self.path.split("?")[0] != "/v1/audio/transcriptions":
            self._send_json(404, {"detail": "Not Found"})
            return
        fields, (filename, content_type, audio) = parse_multipart(self.headers["Content-Type"], body)
        upload = Upload(fields, filename, content_type, audio)
        with wave.open(io.BytesIO(audio)) as wav:
            upload.rate, upload.channels, upload.frames = wav.getframerate(), wav.getnchannels(), wav.getnframes()
        owner = self.server.owner
        with owner.lock:
            owner.uploads.append(upload)
            n = len(owner.uploads)
        if owner.status is not None:
            self._send_json(owner.status, {"error": {"message": "too large"}})
            return
        if owner.fail_from is not None and n >= owner.fail_from:
            self._send(503, b'{"detail": "out of capacity!"}\n', "application/json", {"Retry-After": "0"})
            return
        self._reply(n, upload)

    def _reply(self, n: int, upload: Upload) -> None:
        fmt = upload.fields.get("response_format", "json")
        text = f"piece {n} lasts {upload.seconds:.2f} seconds."
        if fmt == "text":
            self._send(200, text.encode(), "text/plain")
            return
        reply: dict = {"text": text}
        owner = self.server.owner
        if fmt == "verbose_json" and owner.segments is not None:  # a test's own (odd) segments
            reply.update(text="ok", segments=owner.segments)
        elif fmt == "verbose_json":
            half = upload.seconds / 2
            reply.update(language="english", duration=upload.seconds, segments=[
                {"id": 0, "start": 0.0, "end": half, "text": f" piece {n} first half."},
                {"id": 1, "start": half, "end": upload.seconds, "text": f" piece {n} second half."}])
        self._send_json(200, reply)


class TranscriptionServer(LocalServer):
    """Whisper-style endpoint on 127.0.0.1; `uploads` holds what it received."""

    def __init__(self) -> None:
        self.uploads: list[Upload] = []
        self.fail_from: Optional[int] = None  # uploads from this number on get a 503
        self.segments: Optional[list] = None  # verbose_json replies carry these (and the text "ok")
        self.status: Optional[int] = None  # every upload gets this HTTP status
        self.lock = threading.Lock()
        self._serve(_Handler, "transcription-server")
