"""Follow-ups: a logged conversation becomes the earlier messages of the next request, byte for byte."""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Mapping, Optional

from mmcli.errors import HistoryUnreadable, UsageError
from .store import History, NewerDatabase, NoHistory, Turn, history_path

if TYPE_CHECKING:
    from ..job import Earlier, Job
    from mmcli.media.item import MediaItem

NO_HISTORY_HINT = "ask a question first (without -c); mmcli logs lists what the history holds"


# Reading waits this long for another mmcli's write to finish (a chat logging a turn takes milliseconds).
READ_WAIT_SECONDS = 5.0
DAMAGED_HINT = "the file is damaged: move it away (a new one is made) or open it with the sqlite3 tool"


@contextmanager
def opened_history(environ: Optional[Mapping[str, str]] = None, *, create: bool = False,
                   write: bool = False) -> Iterator[History]:
    """The history database, open for the length of a `with`; its problems become clean errors.
    Unless `write`, a file this user cannot write is read as it is."""
    path = history_path(os.environ if environ is None else environ)
    try:
        history = _open(path, create, write)
    except NoHistory:
        raise UsageError("there is no history yet", where=str(path), hint=NO_HISTORY_HINT) from None
    except NewerDatabase as exc:
        raise HistoryUnreadable("cannot read the history", str(exc), where=str(path),
                                hint="use the newer mmcli that wrote it") from None
    except (sqlite3.Error, OSError) as exc:
        raise unreadable(exc, path) from None
    try:
        yield history
    except sqlite3.Error as exc:
        raise unreadable(exc, path) from None
    finally:
        history.close()


def _open(path, create: bool, write: bool) -> History:
    try:
        return History(path, create=create, timeout=READ_WAIT_SECONDS)
    except sqlite3.OperationalError as exc:
        if write or _kind(exc) != "access":
            raise
    return History(path, create=False, timeout=READ_WAIT_SECONDS, read_only=True)


def _kind(exc: BaseException) -> str:
    """locked (another program writes it), access (permissions, a read-only file system), damaged, or other."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if isinstance(exc, OSError) or "readonly" in name.lower() or "CANTOPEN" in name or "PERM" in name \
            or "unable to open" in text or "readonly" in text:
        return "access"
    if "BUSY" in name or "LOCKED" in name or "locked" in text:
        return "locked"
    if "CORRUPT" in name or "NOTADB" in name or "malformed" in text or "not a database" in text:
        return "damaged"
    return "other"


def unreadable(exc: BaseException, path) -> HistoryUnreadable:
    """The clean error for a history that cannot be used; only a damaged file is worth moving away."""
    kind = _kind(exc)
    reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
    if kind == "locked":
        return HistoryUnreadable("the history is locked", f"another program (another mmcli?) holds it: {reason}",
                                 where=str(path), hint="try again when the other mmcli is done; the file is fine")
    if kind == "access":
        return HistoryUnreadable("cannot open the history", reason, where=str(path),
                                 hint="check the permissions of the file and of its folder")
    return HistoryUnreadable("cannot read the history", reason, where=str(path),
                             hint=DAMAGED_HINT if kind == "damaged" else "run again with --debug to see more")


def conversation_id(history: History, cid: Optional[str]) -> str:
    """`cid` when the history holds it, else the latest conversation's (cid None); a usage error otherwise."""
    if cid is None:
        latest = history.latest_conversation()
        if latest is None:
            raise UsageError("there is no conversation to continue", hint=NO_HISTORY_HINT)
        return latest
    if not history.has_conversation(cid):
        raise UsageError("no conversation with this id", where=cid, hint="mmcli logs lists the conversations")
    return cid


def in_context(turns: list[Turn]) -> list[Turn]:
    """The turns a follow-up resends: not forgotten, and answered (whole, cut or interrupted with text)."""
    return [t for t in turns if t.in_context and (t.status in ("ok", "length") or t.answer)]


def restored_turns(history: History, cid: str) -> list[tuple[Turn, dict, list["MediaItem"]]]:
    """Each turn a follow-up resends: the turn, its question as it was sent, and its media."""
    from ..wire import restored_message

    return [(turn, restored_message(turn.message, lambda sha, t=turn: _payload(history, t, sha)),
             [restored_item(history, turn, record) for record in history.items(turn.id)])
            for turn in in_context(history.turns(cid=cid))]


def earlier_messages(history: History, cid: str, system: Optional[str] = None) -> "Earlier":
    """The conversation so far as it was sent: its system prompt (or `system`, which replaces it),
    then each question as sent and each answer; the media each question held."""
    from ..job import Earlier
    from ..wire import assistant_message, system_message

    turns = restored_turns(history, cid)
    system = system if system is not None else (turns[-1][0].system if turns else None)
    messages = [system_message(system)] if system else []
    items: list["MediaItem"] = []
    for turn, question, media in turns:
        messages += [question, assistant_message(turn.answer)]
        items += media
    return Earlier(cid=cid, messages=messages, items=items)


def _payload(history: History, turn: Turn, sha: str) -> bytes:
    found = history.payload(sha)
    if found is None or found[0] is None:
        source = found[2] if found else "a media item"
        raise UsageError("the history does not hold the bytes of a medium of this conversation",
                         where=f"turn {turn.id}: {source}",
                         hint="it was over the size cap (log_media_mb); ask again with the file, without -c")
    return found[0]


def restored_item(history: History, turn: Turn, record: dict) -> "MediaItem":
    """An earlier turn's media item, payload and all, as the plan lists it."""
    from mmcli.media.item import MediaItem

    payloads = [_payload(history, turn, sha) for sha in record.get("sha256", [])]
    single = record.get("transport") in ("inline", "file")
    return MediaItem(source=record["source"], kind=record["kind"], mime=record["mime"],
                     transport=record.get("transport", "inline"),
                     data=payloads[0] if single and payloads else None,
                     frames=[] if single else payloads, times=list(record.get("times", [])),
                     original_width=record.get("original_width"), original_height=record.get("original_height"),
                     sent_width=record.get("sent_width"), sent_height=record.get("sent_height"),
                     visual_tokens=record.get("visual_tokens"), notes=list(record.get("notes", [])),
                     details=dict(record.get("details", {})))


def continue_job(job: "Job", cid: Optional[str], system: Optional[str] = None, uuids: bool = True,
                 environ: Optional[Mapping[str, str]] = None, warn=None) -> "Job":
    """`job` as the next turn of conversation `cid` (None: the latest one); `uuids` False: the endpoint
    takes no media uuids, so turns first sent to a vLLM lose theirs."""
    from ..wire import without_media_uuids

    with opened_history(environ) as history:
        cid = conversation_id(history, cid)
        job.earlier = earlier_messages(history, cid, system)
    if warn is not None and not any(m.get("role") == "assistant" for m in job.earlier.messages):
        warn(f"conversation {cid} has no answered turn to send (each failed or was undone): "
             "the question goes without its context")
    if not uuids:
        job.earlier.messages = [without_media_uuids(m) for m in job.earlier.messages]
    return job


def check_conversation(cid: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """The conversation -c or --cid names, checked before any input is read or request sent."""
    with opened_history(environ) as history:
        return conversation_id(history, cid)


class FollowUp:
    """A task whose every job continues a conversation (a logged one by `cid`, or `earlier` as given);
    everything else is the task's own."""

    def __init__(self, task, cid: Optional[str] = None, system: Optional[str] = None,
                 earlier: Optional["Earlier"] = None) -> None:
        self.task = task
        self.cid = cid
        self.system = system
        self.earlier = earlier

    def __getattr__(self, name: str):
        return getattr(self.task, name)

    def plan_jobs(self, selection, prompt: str, options, ctx):
        """The task's jobs, each after the conversation so far (media uuids only where the endpoint takes them)."""
        from dataclasses import replace

        from ..wire import without_media_uuids

        planned = self.task.plan_jobs(selection, prompt, options, ctx)
        uuids = ctx.target.settings.endpoint.quirks.media_uuid
        for number, job in enumerate(planned.jobs):
            if self.earlier is None:  # (an empty conversation is told once, not once per job)
                continue_job(job, self.cid, self.system, uuids=uuids, warn=None if number else ctx.events.warn)
            else:
                messages = self.earlier.messages if uuids else [without_media_uuids(m) for m in self.earlier.messages]
                job.earlier = replace(self.earlier, messages=messages)
        return planned
