"""A local HTTP server that imitates an OpenAI-compatible (vLLM) endpoint.

Chat requests consume scripted actions in order; every request is recorded so tests
can assert on exactly what the client sent. Stdlib only, bound to 127.0.0.1.
"""

from __future__ import annotations

import collections
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, Union

from .wire import (  # re-exported: tests import everything from this module
    NGINX_413_HTML,
    VLLM_UNAUTHORIZED,
    CompletionBuilder,
    data_url_parts,
    decode_images,
    default_usage,
    split_text,
    vllm_error,
)

CHAT_PATH = "/v1/chat/completions"
DEFAULT_MODEL = "qwen2.5-vl-test"

__all__ = [
    "CHAT_PATH", "DEFAULT_MODEL", "NGINX_413_HTML", "VLLM_UNAUTHORIZED", "Action", "CutStream",
    "Drop", "ErrorEvent", "Events", "Hang", "Raw", "RecordedRequest", "Reply", "ScriptedServer", "Status",
    "chunk", "completion", "data_url_parts", "decode_images", "free_port", "vllm_error",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- actions


@dataclass
class Reply:
    """Answer in the mode the request asked for (JSON object or SSE stream)."""

    text: str
    finish_reason: str = "stop"
    usage: dict | None = None
    chunk_delay: float = 0.0
    delay: float = 0.0  # seconds before the answer starts (either mode): a slow server


@dataclass
class Status:
    """Answer with an HTTP status; dict bodies go out as JSON, None means a vLLM error body."""

    code: int
    body: Union[dict, str, bytes, None] = None
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


@dataclass
class Hang:
    """Read the request, then send nothing for `seconds` and close the connection."""

    seconds: float


@dataclass
class CutStream:
    """Start a 200 SSE stream, send `after_chunks` content chunks, then drop the socket."""

    text: str
    after_chunks: int = 3
    chunk_delay: float = 0.0


@dataclass
class ErrorEvent:
    """Stream `text_before`, then an SSE error event the way vLLM reports mid-stream failures."""

    text_before: str
    message: str
    code: int = 500
    send_done: bool = True


@dataclass
class Drop:
    """Close the connection without sending any response."""


@dataclass
class Raw:
    """Send `body` as is with `code`; `length` declares a Content-Length (larger: a short body, then close)."""

    body: Union[str, bytes]
    code: int = 200
    content_type: str = "application/json"
    length: int | None = None
    headers: dict[str, str] | None = None


@dataclass
class Events:
    """A 200 SSE stream of `events` whatever the request asked: a dict goes out as JSON, a str after
    `data: `, bytes verbatim (one HTTP chunk each); then `data: [DONE]` if `done`, and a clean end
    unless `cut`."""

    events: list[Union[dict, str, bytes]]
    done: bool = True
    cut: bool = False
    delay: float = 0.0  # seconds before each event


Action = Union[Reply, Status, Hang, CutStream, ErrorEvent, Drop, Raw, Events]


def chunk(content: str | None, finish_reason: str | None = None, model: str = DEFAULT_MODEL) -> dict:
    """One chat.completion.chunk carrying `content` (None: no delta content), for Events scripts."""
    delta = {"content": content} if content is not None else {}
    return CompletionBuilder(model).chunk(delta, finish_reason=finish_reason)


def completion(text: str, finish_reason: str = "stop", model: str = DEFAULT_MODEL) -> dict:
    """A whole chat.completion object, for Status/Raw scripts to break in some way."""
    return CompletionBuilder(model).full(text, finish_reason, default_usage(text))


@dataclass
class RecordedRequest:
    """One request as received; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    received_at: float = field(default_factory=time.monotonic)


# ---------------------------------------------------------------- request handler


class QuietHandler(BaseHTTPRequestHandler):
    """A handler base: HTTP/1.1, no access log, a request's body read whole, a reply sent whole."""

    protocol_version = "HTTP/1.1"
    server: "QuietServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep pytest output clean

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
                if size == 0:
                    return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, code: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json", headers)


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        """Serve /health and /v1/models."""
        self._record(b"")
        path = self.path.split("?")[0]
        owner = self.server.owner
        if path == "/health":
            self._send(200, b"", "text/plain")
        elif path == "/version" and owner.version is not None:
            self._send_json(200, {"version": owner.version})
        elif path != "/v1/models":
            self._send_json(404, {"detail": "Not Found"})
        elif self.server.owner.models_reply is not None:
            self._send_raw(self.server.owner.models_reply)
        elif self._authorized():
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "vllm", "root": owner.roots.get(m, m),
                     "parent": None, "max_model_len": owner.max_model_len} for m in owner.models]
            self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        """Serve chat completions from the script."""
        record = self._record(self._read_body())
        owner = self.server.owner
        if self.path.split("?")[0] == "/tokenize" and owner.tokenize_count is not None:
            self._send_json(200, {"count": owner.tokenize_count, "max_model_len": owner.max_model_len, "tokens": []})
            return
        if self.path.split("?")[0] != CHAT_PATH:
            self._send_json(404, {"detail": "Not Found"})
            return
        if not self._authorized():
            return
        payload = record.json if isinstance(record.json, dict) else {}
        action = owner._next_action()
        owner._arrived(+1)
        try:
            self._perform(action, payload)
        except ConnectionError:
            self.close_connection = True  # the client went away mid-answer; nothing to do
        finally:
            owner._arrived(-1)

    def _record(self, body: bytes) -> RecordedRequest:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RecordedRequest(self.command, self.path, headers, body, parsed)
        self.server.owner._add_request(record)
        return record

    def _authorized(self) -> bool:
        key = self.server.owner.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_json(401, VLLM_UNAUTHORIZED)
        return False

    # -- scripted behaviour

    def _perform(self, action: Action, payload: dict) -> None:
        completion = CompletionBuilder(str(payload.get("model") or DEFAULT_MODEL))
        if isinstance(action, Reply):
            self.server.owner._stopping.wait(action.delay)
            usage = action.usage if action.usage is not None else default_usage(action.text)
            if payload.get("stream"):
                self._stream_reply(completion, action, usage, payload)
            else:
                self._send_json(200, completion.full(action.text, action.finish_reason, usage))
        elif isinstance(action, Status):
            self._send_status(action)
        elif isinstance(action, Hang):
            self.server.owner._stopping.wait(action.seconds)
            self.close_connection = True
        elif isinstance(action, CutStream):
            self._start_stream()
            pieces = split_text(action.text)[: action.after_chunks]
            self._stream_pieces(completion, pieces, action.chunk_delay)
            self._abort()
        elif isinstance(action, ErrorEvent):
            self._stream_error(completion, action)
        elif isinstance(action, Drop):
            self._abort()
        elif isinstance(action, Raw):
            self._send_raw(action)
        elif isinstance(action, Events):
            self._send_events(action)
        else:
            raise TypeError(f"unknown scripted action: {action!r}")

    def _send_status(self, action: Status) -> None:
        body = action.body
        if body is None:
            body = vllm_error(action.code, HTTPStatus(action.code).phrase)
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self._send(action.code, body, action.content_type, action.headers)

    def _send_raw(self, action: Raw) -> None:
        body = action.body.encode() if isinstance(action.body, str) else action.body
        self.send_response(action.code)
        self.send_header("Content-Type", action.content_type)
        self.send_header("Content-Length", str(action.length if action.length is not None else len(body)))
        for name, value in (action.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if action.length is not None and action.length > len(body):
            self._abort()  # the rest of the declared body never comes

    def _send_events(self, action: Events) -> None:
        self._start_stream()
        for event in action.events:
            time.sleep(action.delay)
            if isinstance(event, bytes):
                self._write_chunk(event)
            else:
                self._event(event)
        if action.done:
            self._event("[DONE]")
        if action.cut:
            self._abort()
        else:
            self._end_stream()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        # One HTTP chunk per SSE event, flushed, so the client sees events arrive one by one.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, obj: Any) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        self._write_chunk(f"data: {data}\n\n".encode())

    def _end_stream(self) -> None:
        self._write_chunk(b"")

    def _abort(self) -> None:
        # No terminating zero-length chunk: the client sees an incomplete body, not a clean end.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stream_pieces(self, completion: CompletionBuilder, pieces: list[str],
                       delay: float) -> None:
        self._event(completion.chunk({"role": "assistant", "content": ""}))
        for piece in pieces:
            if delay:
                time.sleep(delay)
            self._event(completion.chunk({"content": piece}))

    def _stream_reply(self, completion: CompletionBuilder, action: Reply, usage: dict,
                      payload: dict) -> None:
        self._start_stream()
        self._stream_pieces(completion, split_text(action.text), action.chunk_delay)
        self._event(completion.chunk({"content": ""}, finish_reason=action.finish_reason))
        if (payload.get("stream_options") or {}).get("include_usage"):
            self._event(completion.chunk(None, usage=usage))
        self._event("[DONE]")
        self._end_stream()

    def _stream_error(self, completion: CompletionBuilder, action: ErrorEvent) -> None:
        self._start_stream()
        self._stream_pieces(completion, split_text(action.text_before), 0.0)
        self._event(vllm_error(action.code, action.message))
        if action.send_done:
            self._event("[DONE]")
        self._end_stream()


class QuietServer(ThreadingHTTPServer):
    """A threading server that keeps its handler's errors on `owner.errors` and ignores clients hanging up."""

    daemon_threads = True
    owner: "LocalServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal in fault tests; anything else is a
        # bug in the script or the server and is kept for the test to inspect.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError):
            self.owner.errors.append(error)


# Every port a LocalServer of this process listened on: tests/support/private_state.py names a test that
# wrote about one of them into the user's real state folder.
PORTS_SERVED: set[int] = set()


class LocalServer:
    """A QuietServer on a free port of 127.0.0.1, served from a thread until `close` (or the end of a `with`).
    A subclass sets up its own state, then calls `_serve(handler)`; its handler finds it as `server.owner`."""

    errors: list[BaseException]  # what its handlers raised, other than clients hanging up
    port: int

    def _serve(self, handler: type[BaseHTTPRequestHandler], name: str = "local-server") -> None:
        self.errors = []
        self._httpd = QuietServer(("127.0.0.1", 0), handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        PORTS_SERVED.add(self.port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"{name}-{self.port}", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        """Base URL to give an OpenAI client, ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """Server URL without the /v1 prefix (where /health lives)."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop the server."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------- public server


class ScriptedServer(LocalServer):
    """OpenAI-compatible endpoint on 127.0.0.1 that answers chat requests from a script."""

    def __init__(self, models: list[str] | None = None, api_key: str | None = None,
                 default: Action | None = None):
        self.models: list[str] = list(models) if models is not None else [DEFAULT_MODEL]
        self.api_key = api_key
        # Used once the script runs out; None means Reply("ok"). Setting e.g. Status(500)
        # makes every retry fail the same way without scripting each attempt.
        self.default: Action | None = default
        self.models_reply: Raw | None = None  # set to answer GET /v1/models with these bytes instead
        self.roots: dict[str, str] = {}  # model id -> the `root` GET /v1/models gives (default: the id)
        self.max_model_len: int = 32768
        self.version: str | None = None  # set to answer GET /version as vLLM does
        self.tokenize_count: int | None = None  # set to answer POST /tokenize with this count
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0  # chat requests being answered now
        self.peak_in_flight = 0  # the most chat requests answered at once
        self.errors: list[BaseException] = []  # unexpected exceptions raised in handlers
        self._actions: collections.deque[Action] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._serve(_Handler, "scripted-server")

    def script(self, *actions: Action) -> "ScriptedServer":
        """Queue actions; each chat request consumes the next one."""
        with self._lock:
            self._actions.extend(actions)
        return self

    def drop_script(self) -> list[Action]:
        """Forget the actions not yet consumed (later requests get `default`); returns them."""
        with self._lock:
            dropped = list(self._actions)
            self._actions.clear()
        return dropped

    @property
    def remaining(self) -> int:
        """Number of scripted actions not yet consumed."""
        with self._lock:
            return len(self._actions)

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded POST /v1/chat/completions requests, in arrival order."""
        with self._lock:
            return [r for r in self.requests
                    if r.method == "POST" and r.path.split("?")[0] == CHAT_PATH]

    def close(self) -> None:
        """Wake hanging handlers and stop the server."""
        self._stopping.set()
        super().close()

    def _next_action(self) -> Action:
        with self._lock:
            if self._actions:
                return self._actions.popleft()
        return self.default if self.default is not None else Reply("ok")

    def _arrived(self, step: int) -> None:
        with self._lock:
            self.in_flight += step
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _add_request(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)


