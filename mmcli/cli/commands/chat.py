"""`mmcli chat`: an interactive conversation about images, videos and audio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..conversation_options import Cid, Continue, conversation_to_continue
from ..options import with_common_options

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

HELP = """Talk with a vision-language model about images, videos and audio, one question after another.

INPUTs go with the first question; /attach adds more to any later one. Each question is sent with the conversation so far exactly as it was sent before, so the server's caches hit. Older media are left out (and you are told) when the next question would not fit the model's context. Ctrl-C stops an answer and returns to the prompt; Ctrl-D leaves. Type /help in the chat for its commands. Every turn is logged (mmcli logs) unless --no-log; -c or --cid picks up a logged conversation."""

EPILOG = """Examples:

  mmcli chat photo.jpg

  mmcli chat -c

  mmcli chat --cid 3f2a9c81be --model qwen2.5-vl"""


@with_common_options
def chat(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="INPUT", show_default=False,
        help="Images, videos or audio for the first question: paths, http(s) URLs or data URLs.")] = None,
    cont: Continue = False,
    cid: Cid = None,
    opts: "CommonOptions" = None,
) -> None:
    """Talk with a vision-language model about images, videos and audio."""
    import os
    import sys

    from ..repl.prompt import reader_for
    from ..repl.loop import run_chat
    from mmcli.tasks.chat import ChatSession, files_not_folders
    from mmcli.errors import UsageError
    from mmcli.core.flow import start
    from ..output.render import Output
    from mmcli.server.state import state_dir

    if "-" in (inputs or []):
        raise UsageError("the chat reads its questions from standard input", where="-",
                         hint="give the file's path instead, or /attach it in the chat")
    if opts.output.json and not opts.output.dry_run:
        raise UsageError("the chat has no JSON output", where="--json",
                         hint="mmcli ask --json QUESTION, then mmcli ask -c --json QUESTION for each follow-up")
    cid = conversation_to_continue(cont, cid)
    out = Output(json_mode=opts.output.json)
    with files_not_folders():
        started = start(inputs or [], opts, out, allowed=("image", "video", "audio"))
    session = ChatSession(started.runner, started.ctx, system=opts.generation.system)
    if started.runner.recorder is not None:
        started.runner.recorder.command = "chat"
    if cid is not None:
        _load(session, cid, opts.generation.system)
        out.status(f"continuing conversation {cid}: {len(session.turns)} earlier turn(s)")
    session.pending = list(started.checked)
    session.dry_run = opts.output.dry_run
    logged = started.runner.recorder is not None
    history_file = state_dir(os.environ) / "chat_history" if logged else None
    from ...interrupts import term_ends

    try:
        with term_ends():
            code = run_chat(session, out, reader_for(sys.stdin, sys.stdout, history_file))
    finally:
        if started.runner.recorder is not None:
            started.runner.recorder.close()
    raise typer.Exit(code)


def _load(session, cid: str, system: Optional[str]) -> None:
    """The logged conversation `cid` as the session's earlier turns."""
    from mmcli.tasks.chat import Turn
    from mmcli.core.history.follow import opened_history, restored_turns

    with opened_history() as history:
        turns = restored_turns(history, cid)
    session.cid = cid
    if not session.runner.target.settings.endpoint.quirks.media_uuid:
        from mmcli.core.wire import without_media_uuids

        turns = [(turn, without_media_uuids(question), items) for turn, question, items in turns]
    session.turns = [Turn(question, turn.answer, items, turn.id, turn.prompt, turn.usage)
                     for turn, question, items in turns]
    session.system = system if system is not None else (turns[-1][0].system if turns else None)
