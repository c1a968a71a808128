"""Logging each finished request: the Runner's recorder. A write that fails is a warning, never a failure."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from .store import History, history_path

if TYPE_CHECKING:
    from mmcli.settings import Settings
    from mmcli.media.item import MediaItem
    from ..runner import Result

WarnFn = Callable[[str], None]
HINT = "the answer is not affected; pass --no-log (or MMCLI_LOG=0) to stop logging"


class Recorder:
    """Writes each finished chat result to the history; opened at the first one, shared by threads."""

    def __init__(self, path: Path, warn: Optional[WarnFn], media_cap: int) -> None:
        self.path = path
        self.warn = warn
        self.media_cap = media_cap
        self.history: Optional[History] = None
        self.broken = False  # after one failure the run goes on without logging (one warning, not one per job)
        self.lock = threading.Lock()
        self.last_turn: Optional[int] = None
        self.last_cid: Optional[str] = None
        self.identity: Optional[tuple[int, int]] = None
        self.command = ""  # the command whose requests these are (ask, video, chat, ...), when it says

    def __call__(self, result: "Result") -> None:
        """Log one result; a locked, full or unreadable database costs a warning."""
        self.last_turn = None  # a result not logged has no turn number (an earlier one's would be undone)
        if result.vector is not None or self.broken:
            return
        with self.lock:
            try:
                if self.history is None:
                    self.history = _open(self.path)
                    self.identity = _identity(self.path)
                elif _identity(self.path) != self.identity:
                    self._gone()
                    return
                self.last_cid, self.last_turn = record(self.history, result, self.media_cap, self._say,
                                                      self.command)
            except (sqlite3.Error, OSError, UnicodeError) as exc:
                self.broken = True
                self._say(f"the history was not written ({self.path}): {_reason(exc)}; {HINT}")

    def _gone(self) -> None:
        """The file was moved or deleted since it was opened: writing on would go to a file no one sees."""
        self.broken = True
        self.last_turn = None
        self._say(f"the history file was moved or deleted ({self.path}); the next turns are not logged; {HINT}")

    def _say(self, message: str) -> None:
        if self.warn is not None:
            self.warn(message)

    def close(self) -> None:
        """Close the database, if it was opened."""
        if self.history is not None:
            self.history.close()
            self.history = None


def _open(path: Path) -> History:
    history = History(path)
    history.db.execute("PRAGMA busy_timeout = 250")
    return history


def _identity(path: Path) -> Optional[tuple[int, int]]:
    """The file's device and inode (None: no file), to see it replaced or removed under an open database."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


def recorder_for(settings: "Settings", warn: Optional[WarnFn],
                 environ: Optional[Mapping[str, str]] = None) -> Optional[Recorder]:
    """The recorder for a run, or None when logging is off (--no-log, MMCLI_LOG=0, `log = false`)."""
    import os

    if not settings.log:
        return None
    return Recorder(history_path(os.environ if environ is None else environ), warn, settings.log_media_bytes)


def status_of(result: "Result") -> str:
    """ok, length (cut at the token limit), interrupted or error."""
    if result.error is not None:
        return "error"
    if result.interrupted:
        return "interrupted"
    return "length" if result.finish_reason == "length" else "ok"


def record(history: History, result: "Result", media_cap: int, warn: WarnFn, command: str = "") -> tuple[str, int]:
    """Write one result as a turn (of the conversation its job continues, else a new one); (cid, turn id)."""
    from ..wire import kept_message
    from mmcli.urls import masked_url, masked_urls

    job, request = result.job, result.plan.request
    messages = request.get("messages") or [{}]
    sources, capped = _payload_sources(job.items, media_cap, warn)
    with history.transaction():
        def keep(data: bytes, mime: str) -> str:
            from ..wire import sha256_hex

            sha = sha256_hex(data)
            history.keep_payload(sha, None if sha in capped else data, mime, len(data), storable(sources.get(sha, "")))
            return sha

        # A --pass-url URL's password is not kept: the history is a file (a continued turn sends it masked).
        message = masked_urls(kept_message(messages[-1], keep))
        cid = job.earlier.cid if job.earlier is not None and job.earlier.cid else None
        if cid is None or not history.has_conversation(cid):
            cid = history.new_conversation(cid)  # the first logged turn of a conversation
        first = messages[0]
        gen = job.generation
        fields = {
            "cid": cid, "created": time.time(), "command": command, "prompt": job.prompt, "answer": result.text,
            "system": first.get("content") if first.get("role") == "system" else None, "message": message,
            "model": result.model or job.model, "family": job.family.name, "endpoint": masked_url(result.plan.base_url),
            "options": {"max_tokens": gen.max_tokens, "temperature": gen.temperature, "label": job.label},
            "usage": result.usage, "planned_tokens": result.plan.visual_tokens,
            "server_visual_tokens": result.server_visual_tokens, "seconds": result.seconds,
            "status": status_of(result), "error": result.error.message() if result.error is not None else None,
        }
        items = [_item_record(item) for item in job.items]
        payloads = [sha for item in items for sha in item["sha256"]]
        turn = history.add_turn(storable(fields), storable(items), payloads)
    return cid, turn


def storable(value):
    """`value` with every string made valid UTF-8: a file name's undecodable bytes (kept by Python as
    surrogates) become \\xNN escapes, so the name stays readable and the write cannot fail on it."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def _payloads(item: "MediaItem") -> list[bytes]:
    return [item.data] if item.data is not None else list(item.frames)


def _item_record(item: "MediaItem") -> dict:
    from ..wire import sha256_hex

    return {**item.summary(), "transport": item.transport, "times": list(item.times),
            "sha256": [sha256_hex(p) for p in _payloads(item)]}


def _payload_sources(items: list["MediaItem"], cap: int, warn: WarnFn) -> tuple[dict[str, str], set[str]]:
    """Each payload's source, and the payloads of items over the cap (kept by path only, with a warning)."""
    from ..wire import sha256_hex

    sources: dict[str, str] = {}
    capped: set[str] = set()
    for item in items:
        shas = [sha256_hex(p) for p in _payloads(item)]
        sources.update((sha, item.source) for sha in shas)
        if item.bytes > cap:
            capped.update(shas)
            warn(f"the history keeps only the name of {item.source} ({item.bytes / 1e6:.1f} MB is over the "
                 f"{cap / 1e6:.0f} MB cap): a follow-up needs it sent again; raise log_media_mb in the config to keep it")
    return sources, capped
