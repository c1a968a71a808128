"""What the chat's /media, /context and /save show and write."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmcli.tasks.chat import ChatSession


def _size(item) -> str:
    return f"{item.sent_width}x{item.sent_height}" if item.sent_width else ""


def media_table(session: "ChatSession") -> str:
    """Every medium of the conversation by turn, with its tokens and bytes, then the attachments waiting."""
    lines = []
    for number, turn in enumerate(session.turns, 1):
        for item in turn.items:
            tokens = f"{item.visual_tokens:,} tokens" if item.visual_tokens is not None else "tokens unknown"
            state = " (left out)" if turn.pruned else ""
            lines.append(f"  turn {number}: {item.kind} {item.source} {_size(item)} {tokens}, "
                         f"{item.bytes:,} bytes{state}")
    if not lines:
        lines.append("  the conversation holds no media")
    if session.pending:
        lines.append("waiting for the next question:")
        lines += [f"  {n}. {checked.source.label}" for n, checked in enumerate(session.pending, 1)]
    return "\n".join(["media:"] + lines)


def context_text(session: "ChatSession") -> str:
    """Tokens used and left: media planned exactly, and the server's count for the last question."""
    meter = session.meter()
    lines = [f"media: {meter.visual_tokens:,} visual tokens (planned exactly)"]
    if meter.used is not None:
        lines.append(f"last question: {meter.prompt_tokens:,} prompt tokens + {meter.answer_tokens or 0:,} "
                     f"of answer = {meter.used:,} tokens (the server's count)")
    if meter.limit:
        used = meter.used if meter.used is not None else meter.visual_tokens
        lines.append(f"context: {used:,} of {meter.limit:,} tokens used, {meter.limit - used:,} left "
                     f"({used / meter.limit:.0%})")
    else:
        lines.append("context: the endpoint does not say its length")
    return "\n".join(lines)


def save(session: "ChatSession", name: str) -> list[Path]:
    """The conversation as Markdown in `name`, its media in `<stem>-media/` beside it; never over a file."""
    from mmcli.files import check_target, write_atomic
    from ..output.history_views import extension

    path = Path(name).expanduser()
    fix = (None, None)  # /save has neither --force nor -o: another name is the way
    check_target(path, force=False, options=fix)
    folder = path.with_name(path.stem + "-media")
    written: list[Path] = []
    lines = [f"# Conversation{' ' + session.cid if session.cid else ''}", ""]
    if session.system:
        lines += [f"*System:* {session.system}", ""]
    for number, turn in enumerate(session.turns, 1):
        lines += [f"## Turn {number}", ""]
        for position, item in enumerate(turn.items, 1):
            payloads = [item.data] if item.data is not None else item.frames
            for frame, data in enumerate(payloads, 1):
                suffix = f"-{frame:03d}" if len(payloads) > 1 else ""
                file = folder / f"turn{number}-{position}{suffix}{extension(item.mime, {})}"
                check_target(file, force=False, options=fix)
                folder.mkdir(parents=True, exist_ok=True)
                written.append(write_atomic(file, data, options=fix))
                lines.append(f"![{item.source}]({folder.name}/{file.name})")
        lines += ["", *[f"> {line}" for line in turn.prompt.splitlines() or [""]], "", turn.answer, ""]
    written.insert(0, write_atomic(path, "\n".join(lines).encode("utf-8"), options=fix))
    return written
