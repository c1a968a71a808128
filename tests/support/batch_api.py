"""A local OpenAI Batch API: POST /v1/files, POST /v1/batches, GET /v1/batches/{id}, GET /v1/files/{id}/content.

A batch runs each line of its input file against a real chat endpoint (a ScriptedServer), so its
answers are the ones a live run gets. How each batch ends is scripted: `outcomes` is consumed one per
batch created ("completed", "failed", "expired": half the lines answered, "empty": completed with no
output or error file, "badlines": completed with a non-JSON line and a line with no custom_id among the
answers), and a batch is reported `in_progress` for `polls` retrievals before that. GET /v1/batches
lists the batches, newest first.

Hostile replies: `replies[route]` (route "upload", "create", "retrieve", "list") is sent instead of the
real answer, as (status, content type, body bytes); `patch` is merged into every batch object sent (a
value of DROP leaves the field out). `hold_create` seconds: a create makes its batch, sets `created`,
then waits that long (or until `release` is set) before answering: a client that times out or is
interrupted meanwhile. `pad_mb`: each output file ends with that many megabytes of answers to requests
nobody sent (a big output file).
Stdlib and httpx only, bound to 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import httpx2

from .scripted_server import LocalServer, QuietHandler
from .transcription_server import parse_multipart

DROP = object()  # a `patch` value: leave the field out of the batch object


class BatchAPI(LocalServer):
    """The Batch API of an endpoint whose chat answers come from `chat_root` (a ScriptedServer's root URL)."""

    def __init__(self, chat_root: str, api_key: str | None = None, polls: int = 0) -> None:
        self.chat_root, self.api_key, self.polls = chat_root, api_key, polls
        self.outcomes: list[str] = []  # one per batch created; "completed" once they run out
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, lower-cased headers)
        self.replies: dict[str, tuple[int, str, bytes]] = {}
        self.patch: dict = {}
        self.hold_create = 0.0
        self.created = threading.Event()
        self.release = threading.Event()
        self.pad_mb = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._serve(_Handler, "batch-api")

    @property
    def creates(self) -> int:
        """How many batch creates (POST /v1/batches) reached this API: each one bills a batch."""
        return sum(1 for method, path, _ in self.requests if method == "POST" and path == "/v1/batches")

    def new_id(self, prefix: str) -> str:
        """A fresh object id."""
        with self._lock:
            return f"{prefix}-{next(self._ids)}"

    def create_batch(self, body: dict) -> dict:
        """A new batch over an uploaded file, its ending taken from the script."""
        with self._lock:
            outcome = self.outcomes.pop(0) if self.outcomes else "completed"
        batch = {"id": self.new_id("batch"), "object": "batch", "endpoint": body.get("endpoint"),
                 "input_file_id": body.get("input_file_id"), "completion_window": body.get("completion_window"),
                 "status": "validating", "created_at": int(time.time()), "metadata": body.get("metadata"),
                 "output_file_id": None, "error_file_id": None, "errors": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "_outcome": outcome, "_polls": 0}
        self.batches[batch["id"]] = batch
        return batch

    def advance(self, batch: dict) -> None:
        """One retrieval: still running for `polls` looks, then run the lines and end as scripted."""
        if batch["status"] not in ("validating", "in_progress"):
            return
        batch["_polls"] += 1
        lines = self.files[batch["input_file_id"]].decode().splitlines()
        batch["request_counts"]["total"] = len(lines)
        if batch["_polls"] <= self.polls:
            batch["status"] = "in_progress"
            return
        if batch["_outcome"] == "empty":
            batch.update(status="completed")
            return
        if batch["_outcome"] == "failed":
            batch.update(status="failed", errors={"object": "list", "data": [
                {"code": "model_not_found", "message": "The model 'tiny' does not exist.", "param": "body.model",
                 "line": 1}]})
            return
        answered = lines[: len(lines) // 2] if batch["_outcome"] == "expired" else lines
        outputs, errors = [], []
        for raw in answered:
            line = self._run_line(json.loads(raw))
            (outputs if line["response"]["status_code"] == 200 else errors).append(line)
        batch["request_counts"].update(completed=len(outputs), failed=len(errors))
        junk = [b"{not json\n", b'{"response": {"status_code": 200}}\n'] if batch["_outcome"] == "badlines" else [b""]
        junk += [json.dumps({"custom_id": f"pad-{n}", "response": {"status_code": 200, "body": {"pad": "x" * (1 << 20)}},
                             "error": None}).encode() + b"\n" for n in range(self.pad_mb)]
        batch["output_file_id"] = self._store(outputs, junk)
        batch["error_file_id"] = self._store(errors) if errors else None
        batch["status"] = "expired" if batch["_outcome"] == "expired" else "completed"

    def _run_line(self, line: dict) -> dict:
        reply = httpx2.post(self.chat_root + line["url"], json=line["body"], timeout=30)
        return {"id": self.new_id("batch_req"), "custom_id": line["custom_id"], "error": None,
                "response": {"status_code": reply.status_code, "request_id": "r", "body": reply.json()}}

    def _store(self, lines: list[dict], junk: list[bytes] = ()) -> str:
        file_id = self.new_id("file")
        data = "".join(json.dumps(line) + "\n" for line in reversed(lines)).encode()  # any order
        self.files[file_id] = b"".join(junk[:1]) + data + b"".join(junk[1:])
        return file_id

    def public(self, batch: dict) -> dict:
        """A batch as sent: without the script's own fields, with `patch` applied."""
        shown = {k: v for k, v in batch.items() if not k.startswith("_")}
        shown.update(self.patch)
        return {k: v for k, v in shown.items() if v is not DROP}


class _Handler(QuietHandler):
    def _hostile(self, route: str) -> bool:
        reply = self.server.owner.replies.get(route)
        if reply is None:
            return False
        code, kind, body = reply
        self._send(code, body, kind)
        return True

    def _allowed(self) -> bool:
        owner = self.server.owner
        owner.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        if owner.api_key is None or self.headers.get("Authorization") == f"Bearer {owner.api_key}":
            return True
        self._send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        return False

    def do_POST(self) -> None:
        """Upload a file or create a batch."""
        body = self._read_body()
        if not self._allowed():
            return
        owner = self.server.owner
        if self.path == "/v1/files":
            if self._hostile("upload"):
                return
            fields, (name, _, data) = parse_multipart(self.headers["Content-Type"], body)
            file_id = owner.new_id("file")
            owner.files[file_id] = data
            self._send_json(200, {"id": file_id, "object": "file", "bytes": len(data),
                                  "created_at": int(time.time()), "filename": name, "purpose": fields.get("purpose")})
        elif self.path == "/v1/batches":
            if self._hostile("create"):
                return
            batch = owner.create_batch(json.loads(body))
            owner.created.set()
            owner.release.wait(owner.hold_create)
            self._send_json(200, owner.public(batch))
        else:
            self._send_json(404, {"error": {"message": "no such route"}})

    def do_GET(self) -> None:
        """Retrieve a batch or a file's content."""
        if not self._allowed():
            return
        owner = self.server.owner
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["v1", "batches"]:
            if not self._hostile("list"):
                data = [owner.public(b) for b in reversed(list(owner.batches.values()))]
                self._send_json(200, {"object": "list", "data": data, "has_more": False,
                                      "first_id": data[0]["id"] if data else None,
                                      "last_id": data[-1]["id"] if data else None})
        elif parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in owner.batches:
            if self._hostile("retrieve"):
                return
            batch = owner.batches[parts[2]]
            owner.advance(batch)
            self._send_json(200, owner.public(batch))
        elif parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content" and parts[2] in owner.files:
            self._send(200, owner.files[parts[2]], "application/octet-stream")
        else:
            self._send_json(404, {"error": {"message": f"no such object: {self.path}"}})
