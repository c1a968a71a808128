"""`mmcli logs`: the history of questions and answers: list, search, show, remove, export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..plain_values import PlainValuesCommand, PlainValuesGroup

if TYPE_CHECKING:
    from mmcli.core.history.store import History, Turn

HELP = """Show the history: the latest questions and answers, a full-text search, or one conversation.

Every question and answer of ask, video, docqa, detect and chat (not of --each or batch runs) is kept in history.db in the state folder ($XDG_STATE_HOME/mmcli), media included (up to log_media_mb each, 20 MB unless the config file says otherwise), so a conversation can be continued (mmcli ask -c) after its files are gone. Keys are never kept. Turn logging off with --no-log, MMCLI_LOG=0 or `log = false` in the config file."""

EPILOG = """Examples:

  mmcli logs -n 5

  mmcli logs -q "red car"

  mmcli logs show 12 --media ./out

  mmcli logs export --cid 3f2a9c81be > conversation.jsonl

  mmcli logs rm 3f2a9c81be"""

MAX_TURNS = 2 ** 62  # SQLite's integers stop at 2**63 - 1
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
CidOpt = Annotated[Optional[str], typer.Option("--cid", metavar="ID", show_default=False,
                                               help="Only this conversation.")]
Media = Annotated[Optional[Path], typer.Option(
    "--media", metavar="DIR", show_default=False,
    help="Write the media of the turns shown into DIR (turn<ID>-<N>.<ext>).")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite files in --media DIR.")]
Query = Annotated[Optional[str], typer.Option("--query", "-q", metavar="TEXT", show_default=False,
                                              help="Full-text search of questions and answers.")]
Count = Annotated[int, typer.Option("-n", "--limit", min=1, max=MAX_TURNS, metavar="N", help="How many turns.")]

app = typer.Typer(cls=PlainValuesGroup, help=HELP, epilog=EPILOG, invoke_without_command=True, rich_markup_mode=None)


@app.callback(invoke_without_command=True, epilog=EPILOG)
def logs(ctx: typer.Context, limit: Count = 10, query: Query = None, cid: CidOpt = None,
         json_output: Json = False, media: Media = None, force: Force = False) -> None:
    """Show the latest turns (questions and answers), a search, or one conversation."""
    if ctx.invoked_subcommand is not None:
        return
    import os

    from mmcli.core.history.follow import opened_history
    from mmcli.core.history.store import history_path
    from ..output.history_views import listing_line, turn_record
    from ..output.render import Output

    out = Output(json_mode=json_output)
    if not history_path(os.environ).exists() and cid is None:
        if json_output:
            out.emit_json([])
        else:
            out.status("the history is empty")
        return
    with opened_history() as history:
        turns = history.turns(limit=None if cid else limit, cid=cid, query=query)
        if cid is not None and not turns:
            _no_conversation(cid)
        written = _media_of(history, turns, media, force)
        if json_output:
            out.emit_json([turn_record(history, t, written.get(t.id)) for t in turns])
            return
        for turn in turns:
            out.line(listing_line(turn, len(history.items(turn.id))))
        if not turns:
            out.status("no turns found" if query is not None else "the history is empty")


@app.command("show", epilog=EPILOG, cls=PlainValuesCommand)
def show(ident: Annotated[str, typer.Argument(metavar="ID", help="A turn number or a conversation id.")],
         json_output: Json = False, media: Media = None, force: Force = False) -> None:
    """Show one turn, or a whole conversation, in full."""
    from mmcli.core.history.follow import opened_history
    from ..output.history_views import transcript, turn_record
    from ..output.render import Output

    out = Output(json_mode=json_output)
    with opened_history() as history:
        turns = _find(history, ident)
        written = _media_of(history, turns, media, force)
        if json_output:
            out.emit_json([turn_record(history, t, written.get(t.id)) for t in turns])
            return
        for line in transcript(history, turns):
            out.line(line)
        for files in written.values():
            for item in files:
                out.status(f"wrote {', '.join(f for f in item['files'] if f) or 'nothing (not kept)'}")


@app.command("rm", epilog=EPILOG, cls=PlainValuesCommand)
def rm(ident: Annotated[str, typer.Argument(metavar="ID", help="A turn number or a conversation id.")]) -> None:
    """Delete a turn or a whole conversation, and media no other turn holds."""
    from mmcli.core.history.follow import opened_history
    from ..output.render import Output

    with opened_history(write=True) as history:
        turns = _find(history, ident)
        if ident.isdigit():
            count = history.remove(turn=turns[0].id)
        else:
            count = history.remove(cid=ident)
    Output().status(f"removed {count} turn{'s' if count != 1 else ''}")


@app.command("export", epilog=EPILOG, cls=PlainValuesCommand)
def export(cid: CidOpt = None, query: Query = None, media: Media = None, force: Force = False) -> None:
    """Every turn (or one conversation's) as JSON lines: media as data URLs, or as files with --media."""
    from mmcli.core.history.follow import opened_history
    from ..output.history_views import data_urls, turn_record, write_media
    from ..output.render import Output

    out = Output()
    with opened_history() as history:
        turns = history.turns(cid=cid, query=query)
        if cid is not None and not turns:
            _no_conversation(cid)
        if media is not None:
            _check_dir(media)
        for turn in turns:
            items = write_media(history, turn, media, force) if media is not None else data_urls(history, turn)
            out.json_line(turn_record(history, turn, items))


def _find(history: "History", ident: str) -> list["Turn"]:
    from mmcli.errors import UsageError

    if ident.isdigit():
        turn = history.turn(int(ident)) if int(ident) < 2 ** 63 else None  # SQLite's integers stop there
        if turn is None:
            raise UsageError("no turn with this number", where=ident, hint="mmcli logs lists the turns")
        return [turn]
    turns = history.turns(cid=ident)
    if not turns:
        _no_conversation(ident)
    return turns


def _no_conversation(cid: str) -> None:
    from mmcli.errors import UsageError

    raise UsageError("no conversation with this id", where=cid, hint="mmcli logs lists the conversations")


def _check_dir(directory: Path) -> None:
    from mmcli.files import check_output_dir

    check_output_dir(directory, f"--media {directory}", option="--media")


def _media_of(history: "History", turns: list["Turn"], directory: Optional[Path], force: bool) -> dict:
    """Write the turns' media into `directory` when given; {turn id: items with their files}."""
    from ..output.history_views import write_media

    if directory is None:
        return {}
    _check_dir(directory)
    return {turn.id: write_media(history, turn, directory, force) for turn in turns}
