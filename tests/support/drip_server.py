"""A hostile HTTP server on 127.0.0.1 that drips its reply: some bytes at once, then one byte at a time.

Each connection reads one request (headers and a Content-Length body), then sends `head` at once, `drip` a
byte every `delay` seconds, then `tail` at once, and closes. Every request gets the same script, whatever
its route, so chat, embeddings, transcriptions, vLLM's own routes and media downloads can all be dripped.
Stdlib only.
"""

from __future__ import annotations

import json
import socket
import threading


def http_reply(body: bytes | dict, content_type: str = "application/json", status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 reply with a Content-Length (a dict body goes out as JSON)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode() + data


def event_stream_head() -> bytes:
    """The headers of a chunk-less SSE stream (the body runs until the connection closes)."""
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


class DripServer:
    """Answers every request with head, then drip a byte at a time, then tail."""

    def __init__(self, head: bytes = b"", drip: bytes = b"", tail: bytes = b"", delay: float = 0.1) -> None:
        self.head, self.drip, self.tail, self.delay = head, drip, tail, delay
        self.requests: list[bytes] = []  # each request's first line
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._stopping = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            self.requests.append(_read_request(conn))
            conn.sendall(self.head)
            for byte in self.drip:
                if self._stopping.wait(self.delay):
                    return
                conn.sendall(bytes([byte]))
            conn.sendall(self.tail)
        except OSError:
            pass  # the client gave up: what the tests want
        finally:
            conn.close()

    def close(self) -> None:
        """Stop answering and listening."""
        self._stopping.set()
        self._listener.close()

    def __enter__(self) -> "DripServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return data.split(b"\r\n")[0]
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        got = conn.recv(65536)
        if not got:
            break
        body += got
    return head.split(b"\r\n")[0]

