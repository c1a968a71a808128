"""What `mmcli logs` shows and writes: turns as lines, JSON and export records; media written back out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from mmcli.core.history.store import History, Turn

PREVIEW = 60  # characters of a prompt or answer on a listing line


def one_line(text: str, width: int = PREVIEW) -> str:
    """`text` on one line, cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def when(seconds: float) -> str:
    """A turn's time, local, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def listing_line(turn: Turn, media: int) -> str:
    """One turn on one line: id, conversation, time, model, media count, question and answer."""
    status = "" if turn.status == "ok" else f" [{turn.status}]"
    held = f" +{media} media" if media else ""
    return (f"{turn.id:>5}  {turn.cid}  {when(turn.created)}  {turn.model or '-'}{held}{status}  "
            f"{one_line(turn.prompt, 40)!s} -> {one_line(turn.answer)}")


def turn_record(history: History, turn: Turn, media: Optional[list[dict]] = None) -> dict:
    """A turn as JSON: its fields and its media items (each with `data_url` or `file` when given)."""
    items = history.items(turn.id)
    record = turn.to_dict()
    record["media"] = media if media is not None else [_item_view(item) for item in items]
    return record


def _item_view(item: dict) -> dict:
    return {key: item.get(key) for key in ("source", "kind", "mime", "sent_width", "sent_height", "visual_tokens",
                                            "bytes", "transport", "sha256")}


def data_urls(history: History, turn: Turn) -> list[dict]:
    """A turn's media, each payload as a data URL (None when the history kept only its name)."""
    from mmcli.core.wire import data_url

    views = []
    for item in history.items(turn.id):
        urls = []
        for sha in item.get("sha256", []):
            found = history.payload(sha)
            urls.append(data_url(found[0], found[1]) if found and found[0] is not None else None)
        views.append({**_item_view(item), "data_urls": urls})
    return views


def write_media(history: History, turn: Turn, directory: Path, force: bool) -> list[dict]:
    """Write a turn's media into `directory` (never over a file without `force`); the items with their files."""
    from mmcli.files import check_target, make_output_dir, write_atomic

    make_output_dir(directory)
    views = []
    for position, item in enumerate(history.items(turn.id), 1):
        files: list[Optional[str]] = []
        shas = item.get("sha256", [])
        for n, sha in enumerate(shas, 1):
            found = history.payload(sha)
            if not found or found[0] is None:
                files.append(None)
                continue
            frame = f"-{n:03d}" if len(shas) > 1 else ""
            path = directory / f"turn{turn.id}-{position}{frame}{extension(found[1], item)}"
            fix = ("--force", "--media DIR")
            check_target(path, force=force, options=fix)
            write_atomic(path, found[0], force=force, options=fix)
            files.append(str(path))
        views.append({**_item_view(item), "files": files})
    return views


def extension(mime: str, item: dict) -> str:
    """A file extension for a payload: from its type, else from its item's type."""
    import mimetypes

    for candidate in (mime, item.get("mime") or ""):
        if candidate == "image/jpeg":
            return ".jpg"
        guessed = mimetypes.guess_extension(candidate)
        if guessed:
            return guessed
    return ".bin"


def transcript(history: History, turns: list[Turn]) -> list[str]:
    """A conversation as text blocks: each question with its media, then its answer."""
    lines = []
    for turn in turns:
        items = history.items(turn.id)
        forgotten = "" if turn.in_context else " (forgotten)"
        lines.append(f"--- turn {turn.id} · {turn.cid} · {when(turn.created)} · {turn.model or '-'} · "
                     f"{turn.status}{forgotten}")
        for item in items:
            size = f"{item.get('sent_width')}x{item.get('sent_height')}" if item.get("sent_width") else ""
            tokens = f", {item['visual_tokens']:,} tokens" if item.get("visual_tokens") else ""
            lines.append(f"[{item.get('kind')}: {item.get('source')} {size}{tokens}]")
        lines += [f"> {line}" for line in turn.prompt.splitlines() or [""]]
        lines += [turn.answer, ""]
        if turn.error:
            lines.insert(-1, f"(error: {turn.error})")
    return lines
