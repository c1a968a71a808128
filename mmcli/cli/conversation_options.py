"""-c/--continue and --cid: a question that follows up a logged conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from ..settings import CommonOptions

CONVERSATION = "Conversation"

Continue = Annotated[bool, typer.Option(
    "--continue", "-c", rich_help_panel=CONVERSATION,
    help="Follow up the latest conversation: its questions, media and answers are sent again, "
         "exactly as before, ahead of this question (mmcli logs shows them).")]
Cid = Annotated[Optional[str], typer.Option(
    "--cid", metavar="ID", rich_help_panel=CONVERSATION, show_default=False,
    help="Follow up conversation ID (from mmcli logs) instead of the latest one.")]


def conversation_to_continue(cont: bool, cid: Optional[str], each: bool = False) -> Optional[str]:
    """The conversation -c/--cid names, checked before any input is read; None for a new one."""
    if not cont and cid is None:
        return None
    from ..errors import UsageError
    from ..core.history.follow import check_conversation

    if each:
        raise UsageError("--each cannot follow up a conversation",
                         hint="each file gets its own conversation; leave out -c/--cid")
    return check_conversation(cid)


def following(task, cid: Optional[str], opts: "CommonOptions"):
    """`task` itself for a new conversation; else the same task whose jobs continue conversation `cid`."""
    if cid is None:
        return task
    from ..core.history.follow import FollowUp

    return FollowUp(task, cid, opts.generation.system)
