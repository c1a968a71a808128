"""The chat loop: read a line, run a slash command or ask, show the answer as it streams.

Ctrl-C during an answer stops that answer (the partial text is kept and logged as interrupted) and
returns to the prompt; Ctrl-C at the prompt clears it; Ctrl-D or /exit leaves with status 0. Errors
are shown and the chat goes on."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Callable, Optional

from mmcli.errors import MmcliError

if TYPE_CHECKING:
    from ..output.render import Output
    from mmcli.tasks.chat import ChatSession

HELP = """Type a question and press Enter (Esc then Enter for a new line, or a \"\"\" block).
  /attach PATH|URL...  add images, videos or audio to the next question (Tab completes paths)
  /drop N              take attachment N off the next question
  /media               the media of the conversation and the attachments waiting
  /context             tokens used and left
  /model [ID]          show or change the model
  /system [TEXT]       show or set the system prompt (/system - clears it)
  /retry               ask the last question again
  /undo                forget the last question and its answer
  /save FILE           write the conversation as Markdown, its media beside it
  /help                this text
  /exit                leave (or Ctrl-D)
Ctrl-C stops an answer; at the prompt it clears the line."""

STOP = object()


def run_chat(session: "ChatSession", out: "Output", read: Callable[[], str]) -> int:
    """The loop; returns the exit status (0 when the user leaves)."""
    out.status("chat: /help lists the commands; Ctrl-D leaves")
    tally = Tally()
    while True:
        try:
            text = read().strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return tally.status()
        if not text:
            continue
        question = not text.startswith("/")
        try:
            if not question:
                if command(session, out, text) is STOP:
                    return tally.status()
                continue
            if session.dry_run:
                show_plan(session, out, text)
                continue
            tally.note(answer(session, out, lambda on_text: session.ask(
                text, on_text, pruned=lambda names: _pruned(out, names))))
        except MmcliError as exc:
            show_error(out, exc)
            if question:
                tally.note(exc)
        except KeyboardInterrupt:
            out.status("stopped")


class Tally:
    """How the questions went: a chat in which none was answered exits with the last failure's code."""

    def __init__(self) -> None:
        self.answered = False
        self.failure: Optional[MmcliError] = None

    def note(self, failure: Optional[MmcliError]) -> None:
        """One question's outcome: None when it was answered (or stopped by the user)."""
        if failure is None:
            self.answered = True
        else:
            self.failure = failure

    def status(self) -> int:
        """The exit status of the chat."""
        return 0 if self.answered or self.failure is None else int(self.failure.exit_code)


def show_plan(session: "ChatSession", out: "Output", text: str) -> None:
    """--dry-run: what this question would send (the conversation so far, the attachments); nothing is sent."""
    out.show_plan(session.runner.plan(session.job(text)))
    session.pending = []  # they went with this question's plan
    out.status("--dry-run: nothing was sent")


def show_error(out: "Output", exc: MmcliError) -> None:
    """An error as the command line shows it, and the chat goes on."""
    out.stderr_block(f"mmcli: error: {exc.message()}" + (f"\nhint: {exc.hint}" if exc.hint else ""))


def _pruned(out: "Output", names: list[str]) -> None:
    out.warn("to fit the context, left out the media of older turns: " + ", ".join(names))


def answer(session: "ChatSession", out: "Output", send: Callable) -> Optional[MmcliError]:
    """Send and show the answer as it arrives; Ctrl-C stops it, an error is shown (and returned), the chat goes on."""
    from mmcli.errors import RunStopped

    stop_spinner = out.start_spinner("waiting for the model")
    sinks: list = []

    def on_text(delta: str) -> None:
        if not sinks:
            stop_spinner()
            sinks.append(out.answer_sink())
        sinks[0].write(delta)

    try:
        result = send(on_text)
    except RunStopped as stopped:
        _close(stop_spinner, sinks)
        if isinstance(stopped.cause, KeyboardInterrupt):
            out.status("answer stopped; what came is kept")
        elif isinstance(stopped.cause, MmcliError):
            show_error(out, stopped.cause)
            return stopped.cause
        return None
    except BaseException:
        _close(stop_spinner, sinks)
        raise
    _close(stop_spinner, sinks)
    from ..output.show_answer import check_result

    check_result(result, out)
    _meter_warning(session, out)
    return None


def _close(stop_spinner, sinks: list) -> None:
    stop_spinner()
    if sinks:
        sinks.pop().close()


def _meter_warning(session: "ChatSession", out: "Output") -> None:
    from mmcli.tasks.chat import WARN_AT

    meter = session.meter()
    if meter.share is not None and meter.share >= WARN_AT:
        out.warn(f"the conversation fills {meter.share:.0%} of the context ({meter.used:,} of {meter.limit:,} "
                 "tokens); the media of older turns will be left out as it fills")


def command(session: "ChatSession", out: "Output", text: str) -> Optional[object]:
    """Run one slash command."""
    from mmcli.errors import UsageError
    from ..output.history_views import one_line
    from . import views

    name, _, rest = text.partition(" ")
    rest = rest.strip()
    if name in ("/exit", "/quit"):
        return STOP
    if name == "/help":
        out.stderr_block(HELP)
    elif name == "/attach":
        if not rest:
            raise UsageError("/attach needs a path or URL", hint="/attach photo.jpg")
        for checked in session.attach(_words(rest)):
            out.status(f"attached {checked.source.label}: it goes with the next question")
    elif name == "/drop":
        if not rest.isdigit():
            raise UsageError("/drop needs an attachment number", hint="/media lists them")
        out.status(f"dropped {session.drop(int(rest)).source.label}")
    elif name == "/media":
        out.stderr_block(views.media_table(session))
    elif name == "/context":
        out.stderr_block(views.context_text(session))
    elif name == "/model":
        if rest:
            session.set_model(rest)
        out.status(f"model: {session.runner.target.model or '(the first one the endpoint lists)'}")
    elif name == "/system":
        if rest:
            session.system = None if rest == "-" else rest
        out.status(f"system prompt: {session.system or '(none)'}")
    elif name == "/undo":
        turn = session.undo()
        out.status(f"forgot: {one_line(turn.prompt)}" if turn else "nothing to undo")
    elif name == "/retry":
        if session.dry_run and session.turns:
            show_plan(session, out, session.turns[-1].prompt)
        elif not session.turns:
            out.status("nothing to retry")
        else:
            last = session.turns[-1]
            answer(session, out, session.retry)
            if session.turns and session.turns[-1] is last:  # an error, or Ctrl-C before the first word
                out.status("the earlier answer is kept")
    elif name == "/save":
        if not rest:
            raise UsageError("/save needs a file name", hint="/save chat.md")
        for path in views.save(session, _words(rest)[0]):
            out.status(f"wrote {path}")
    else:
        raise UsageError("unknown command", where=name, hint="/help lists the commands")
    return None


def _words(text: str) -> list[str]:
    from mmcli.errors import UsageError

    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError("cannot read the arguments", str(exc), hint="quote paths with spaces") from None
