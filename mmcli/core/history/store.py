"""The history database: one SQLite file in the state folder, with conversations, turns and media
kept once by the SHA-256 of the bytes sent. Only this module writes SQL."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

FILE_NAME = "history.db"
# A write waits this long for another mmcli's write to finish, then gives up (a warning, not a failure).
BUSY_SECONDS = 0.25

# Each entry takes the database from version i to i + 1; a new version appends one, never edits one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        cid TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        created REAL NOT NULL,
        command TEXT NOT NULL DEFAULT '',
        prompt TEXT NOT NULL,
        answer TEXT NOT NULL,
        system TEXT,
        message TEXT NOT NULL,          -- the question as sent, payloads replaced by their SHA-256
        model TEXT,
        family TEXT,
        endpoint TEXT,                  -- the base URL, password masked
        options TEXT NOT NULL DEFAULT '{}',
        usage TEXT NOT NULL DEFAULT '{}',
        planned_tokens INTEGER,         -- visual tokens the plan counted (the whole conversation's)
        server_visual_tokens INTEGER,   -- --verify's exact count
        seconds REAL,
        status TEXT NOT NULL,           -- ok | length | interrupted | error
        error TEXT,
        in_context INTEGER NOT NULL DEFAULT 1   -- 0: forgotten (/undo), not sent in follow-ups
    );
    CREATE INDEX turns_by_conversation ON turns(cid, id);
    CREATE TABLE media (
        sha256 TEXT PRIMARY KEY,
        mime TEXT NOT NULL,
        size INTEGER NOT NULL,
        data BLOB,                      -- NULL when over the size cap: only `source` is kept
        source TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    );
    CREATE TABLE turn_media (
        turn INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        item TEXT NOT NULL,             -- the item's summary and the SHA-256 of each of its payloads
        PRIMARY KEY (turn, position)
    );
    CREATE TABLE turn_payloads (
        turn INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL
    );
    CREATE INDEX payloads_by_sha ON turn_payloads(sha256);
    CREATE VIRTUAL TABLE turns_fts USING fts5(prompt, answer, content='turns', content_rowid='id');
    CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts(rowid, prompt, answer) VALUES (new.id, new.prompt, new.answer);
    END;
    CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, prompt, answer) VALUES ('delete', old.id, old.prompt, old.answer);
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

TURN_COLUMNS = ("id", "cid", "created", "command", "prompt", "answer", "system", "message", "model", "family",
                "endpoint", "options", "usage", "planned_tokens", "server_visual_tokens", "seconds", "status",
                "error", "in_context")


class NewerDatabase(sqlite3.DatabaseError):
    """The file was written by a newer mmcli, whose schema this one does not know."""


class NoHistory(Exception):
    """There is no history database yet."""


def new_id() -> str:
    """A new conversation id: 10 hex digits, never all digits (those are turn numbers)."""
    while True:
        cid = secrets.token_hex(5)
        if not cid.isdigit():
            return cid


def history_path(environ: Mapping[str, str]) -> Path:
    """Where the history lives: the state folder's history.db."""
    from mmcli.server.state import state_dir

    return state_dir(environ) / FILE_NAME


@dataclass
class Turn:
    """One logged question and answer."""

    id: int
    cid: str
    created: float
    command: str
    prompt: str
    answer: str
    system: Optional[str]
    message: dict
    model: Optional[str]
    family: Optional[str]
    endpoint: Optional[str]
    options: dict
    usage: dict
    planned_tokens: Optional[int]
    server_visual_tokens: Optional[int]
    seconds: Optional[float]
    status: str
    error: Optional[str]
    in_context: bool

    @classmethod
    def from_row(cls, row: tuple) -> "Turn":
        """A Turn from a row of TURN_COLUMNS."""
        values = dict(zip(TURN_COLUMNS, row))
        for name in ("message", "options", "usage"):
            values[name] = json.loads(values[name])
        values["in_context"] = bool(values["in_context"])
        return cls(**values)

    def to_dict(self) -> dict:
        """The turn as JSON-ready data (the kept message left out)."""
        data = {name: getattr(self, name) for name in TURN_COLUMNS if name != "message"}
        data["prompt_tokens"] = self.usage.get("prompt_tokens")
        return data


class History:
    """An open history database."""

    def __init__(self, path: Path, *, create: bool = True, timeout: float = BUSY_SECONDS,
                 read_only: bool = False) -> None:
        self.path = path
        if not path.exists():
            if not create:
                raise NoHistory(str(path))
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # private from the start: conversations and media are personal
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if read_only:  # a file (or folder) this user may not write: read it as it is, change nothing
            from urllib.parse import quote

            self.db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=timeout,
                                      isolation_level=None, check_same_thread=False)
            if self.version() != SCHEMA_VERSION:
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        self._migrate()

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def version(self) -> int:
        """The schema version the file holds."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.version()
        if version > SCHEMA_VERSION:
            raise NewerDatabase(f"schema version {version} is newer than this mmcli's {SCHEMA_VERSION}")
        for number in range(version, SCHEMA_VERSION):
            try:  # the migration and its version number land together, or neither does
                self.db.executescript("BEGIN IMMEDIATE;" + MIGRATIONS[number]
                                      + f"PRAGMA user_version = {number + 1}; COMMIT;")
            except sqlite3.Error:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                if self.version() <= number:  # else another mmcli migrated it meanwhile
                    raise

    def transaction(self):
        """A context in which everything is written at once or not at all."""
        return _Transaction(self.db)

    # ---- writing

    def new_conversation(self, cid: Optional[str] = None) -> str:
        """Start a conversation: `cid` (chosen by the caller beforehand), else a new id."""
        cid = cid or new_id()
        now = time.time()
        self.db.execute("INSERT INTO conversations (id, created, updated) VALUES (?, ?, ?)", (cid, now, now))
        return cid

    def has_conversation(self, cid: str) -> bool:
        """Whether a conversation with this id exists."""
        return self.db.execute("SELECT 1 FROM conversations WHERE id = ?", (cid,)).fetchone() is not None

    def keep_payload(self, sha: str, data: Optional[bytes], mime: str, size: int, source: str) -> None:
        """Store one payload once (bytes None: over the cap, only the source is kept); a later copy
        with bytes fills in one kept without."""
        self.db.execute("INSERT INTO media (sha256, mime, size, data, source, created) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(sha256) DO UPDATE SET data = COALESCE(media.data, excluded.data)",
                        (sha, mime, size, data, source, time.time()))

    def add_turn(self, fields: dict, items: list[dict], payloads: list[str]) -> int:
        """Insert one turn with its items and the payloads it refers to; returns its id."""
        names = [n for n in TURN_COLUMNS if n in fields]
        values = [json.dumps(fields[n], ensure_ascii=False) if n in ("message", "options", "usage")
                  else fields[n] for n in names]
        cursor = self.db.execute(f"INSERT INTO turns ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                                 values)
        turn = cursor.lastrowid
        self.db.executemany("INSERT INTO turn_media (turn, position, item) VALUES (?, ?, ?)",
                            [(turn, n, json.dumps(item)) for n, item in enumerate(items)])
        self.db.executemany("INSERT INTO turn_payloads (turn, sha256) VALUES (?, ?)",
                            [(turn, sha) for sha in dict.fromkeys(payloads)])
        self.db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), fields["cid"]))
        return turn

    def forget_turn(self, turn: int) -> None:
        """Leave a turn out of its conversation's follow-ups (it stays in the log)."""
        self.db.execute("UPDATE turns SET in_context = 0 WHERE id = ?", (turn,))

    def remove(self, turn: Optional[int] = None, cid: Optional[str] = None) -> int:
        """Delete one turn or a whole conversation, and media nothing refers to any more; how many turns went."""
        with self.transaction():
            if cid is not None:
                count = self.db.execute("SELECT COUNT(*) FROM turns WHERE cid = ?", (cid,)).fetchone()[0]
                self.db.execute("DELETE FROM turns WHERE cid = ?", (cid,))
                self.db.execute("DELETE FROM conversations WHERE id = ?", (cid,))
            else:
                count = self.db.execute("DELETE FROM turns WHERE id = ?", (turn,)).rowcount
            self.db.execute("DELETE FROM conversations WHERE id NOT IN (SELECT cid FROM turns)")
            self.db.execute("DELETE FROM media WHERE sha256 NOT IN (SELECT sha256 FROM turn_payloads)")
        return count

    # ---- reading

    def turns(self, *, limit: Optional[int] = None, cid: Optional[str] = None, query: Optional[str] = None,
              context_only: bool = False) -> list[Turn]:
        """Turns, newest last: the latest `limit`, of one conversation, or matching a full-text query."""
        where, args = [], []
        if cid is not None:
            where.append("cid = ?")
            args.append(cid)
        if context_only:
            where.append("in_context = 1")
        if query is not None:
            where.append("id IN (SELECT rowid FROM turns_fts WHERE turns_fts MATCH ?)")
            args.append(fts_query(query))
        sql = f"SELECT {', '.join(TURN_COLUMNS)} FROM turns"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [Turn.from_row(row) for row in reversed(self.db.execute(sql, args).fetchall())]

    def turn(self, turn: int) -> Optional[Turn]:
        """One turn by id, or None."""
        row = self.db.execute(f"SELECT {', '.join(TURN_COLUMNS)} FROM turns WHERE id = ?", (turn,)).fetchone()
        return Turn.from_row(row) if row else None

    def latest_conversation(self) -> Optional[str]:
        """The conversation of the latest turn."""
        row = self.db.execute("SELECT cid FROM turns ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def items(self, turn: int) -> list[dict]:
        """The media items of a turn, in order."""
        rows = self.db.execute("SELECT item FROM turn_media WHERE turn = ? ORDER BY position", (turn,))
        return [json.loads(row[0]) for row in rows]

    def payload(self, sha: str) -> Optional[tuple[Optional[bytes], str, str]]:
        """(bytes or None when not kept, mime, source) of one payload, or None when unknown."""
        row = self.db.execute("SELECT data, mime, source FROM media WHERE sha256 = ?", (sha,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def integrity(self) -> str:
        """SQLite's integrity check: 'ok' when the file is sound."""
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: each word a quoted term, so punctuation never is syntax."""
    words = text.split()
    return " ".join('"' + word.replace('"', '""') + '"' for word in words) or '""'


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.owner = True
        else:
            self.owner = False

    def __exit__(self, kind, value, tb) -> None:
        if not self.owner:
            return
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")

