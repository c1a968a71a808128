"""A conversation held in memory: its turns as sent, media waiting for the next question, the context
it fills. Each question goes through the Runner, so it is logged like any other request."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from ..core.job import Earlier

if TYPE_CHECKING:
    from ..core.inputs import CheckedInput
    from ..core.job import Job
    from ..media.item import MediaItem
    from ..core.runner import Result, Runner
    from .common import Context

KEEP_RECENT = 2  # pruning never touches the media of the last turns
WARN_AT = 0.8  # the share of the context after which each answer is followed by a warning
MEDIA_TYPES = ("image_url", "video_url", "input_audio", "audio_url", "audio")


@dataclass
class Turn:
    """One question as it was sent and its answer; `turn_id` is its number in the history (None: not logged)."""

    question: dict
    answer: str
    items: list["MediaItem"] = field(default_factory=list)
    turn_id: Optional[int] = None
    prompt: str = ""
    usage: dict = field(default_factory=dict)
    pruned: bool = False
    content: list = field(default_factory=list)  # the job's content (media and labels), for /retry


@dataclass
class Meter:
    """Where the conversation stands against the model's context."""

    visual_tokens: int  # planned, exactly, for the media still sent
    prompt_tokens: Optional[int]  # the server's count for the last question
    answer_tokens: Optional[int]
    limit: Optional[int]  # max_model_len

    @property
    def used(self) -> Optional[int]:
        """Tokens the next question starts from: the last prompt and its answer."""
        if self.prompt_tokens is None:
            return None
        return self.prompt_tokens + (self.answer_tokens or 0)

    @property
    def share(self) -> Optional[float]:
        """The used share of the context, when both are known."""
        return self.used / self.limit if self.used is not None and self.limit else None


class ChatSession:
    """A conversation with one target: ask, attach, drop, undo, retry, prune."""

    def __init__(self, runner: "Runner", ctx: "Context", system: Optional[str] = None,
                 cid: str = "", turns: Optional[list[Turn]] = None) -> None:
        self.runner = runner
        self.ctx = ctx
        self.system = system
        self.cid = cid
        self.turns: list[Turn] = list(turns or [])
        self.pending: list["CheckedInput"] = []  # media for the next question
        self.last_usage: dict = {}
        self.dry_run = False  # --dry-run: each question's plan is shown, nothing is sent

    # ---- media for the next question

    def attach(self, specs: list[str]) -> list["CheckedInput"]:
        """Read and check inputs now (a bad one is refused here); they join the next question."""
        from ..core.inputs import read_inputs

        with files_not_folders():
            checked = read_inputs(specs, self.ctx.media, self.runner.target.settings.endpoint.timeout,
                                  self.ctx.events.warn, allowed=("image", "video", "audio"))
        self.pending += checked
        return checked

    def drop(self, number: int) -> "CheckedInput":
        """Take attachment `number` (1-based) off the next question."""
        if not 1 <= number <= len(self.pending):
            from ..errors import UsageError

            raise UsageError("no such attachment", where=str(number),
                             hint=f"/media lists them; there {'is' if len(self.pending) == 1 else 'are'} "
                                  f"{len(self.pending)}")
        return self.pending.pop(number - 1)

    # ---- asking

    def earlier(self) -> Earlier:
        """The conversation so far as it is sent ahead of the next question."""
        from ..core.wire import assistant_message, system_message

        messages = [system_message(self.system)] if self.system else []
        items: list["MediaItem"] = []
        for turn in self.turns:
            messages += [turn.question, assistant_message(turn.answer)]
            items += [] if turn.pruned else turn.items
        return Earlier(cid=self.cid, messages=messages, items=items)

    def job(self, prompt: str) -> "Job":
        """The next question as a job: the pending media, then the prompt, after the conversation so far."""
        from .ask import ask_job

        job = ask_job(list(self.pending), prompt, self.ctx)
        job.earlier = self.earlier()
        return job

    def ask(self, prompt: str, on_text: Optional[Callable[[str], None]] = None,
            pruned: Optional[Callable[[list[str]], None]] = None) -> "Result":
        """Send a question (pruning old media first if it would not fit); the turn is kept even when
        the answer was cut short by Ctrl-C. Raises RunStopped as the Runner does."""
        from ..errors import RunStopped

        job = self.job(prompt)
        names = self.prune_to_fit(job)
        if names:
            job = self.job(prompt)
            if pruned is not None:
                pruned(names)
        waiting, self.pending = self.pending, []
        try:
            return self._send(job, on_text)
        except RunStopped as stopped:
            if stopped.results[-1].error is not None and not stopped.results[-1].text:
                self.pending = waiting  # nothing came back: the attachments wait for the next question
            raise

    def _keep(self, result: "Result") -> None:
        """Keep an answered turn (also a partial one); a failure with nothing said is not part of the talk."""
        if result.error is not None and not result.text:
            return
        recorder = self.runner.recorder
        if recorder is not None and recorder.last_cid:
            self.cid = recorder.last_cid
        question = result.plan.request["messages"][-1]
        self.turns.append(Turn(question, result.text, list(result.job.items),
                               recorder.last_turn if recorder is not None else None, result.job.prompt,
                               dict(result.usage), content=list(result.job.content)))
        self.last_usage = dict(result.usage)

    def undo(self) -> Optional[Turn]:
        """Forget the last turn: it is not sent again, and the history marks it forgotten."""
        if not self.turns:
            return None
        turn = self.turns.pop()
        self._forget(turn)
        return turn

    def retry(self, on_text=None) -> Optional["Result"]:
        """Ask the last question again (its media too), in place of its answer; if nothing comes back,
        the old turn stays, in the talk and in the history."""
        if not self.turns:
            return None
        turn = self.turns.pop()
        saved, self.pending = self.pending, []
        job = self.job(turn.prompt)
        self.pending = saved
        job.content = list(turn.content)  # the same media, already prepared
        before = len(self.turns)
        try:
            return self._send(job, on_text)
        finally:
            self._settle_retry(turn, before)

    def _settle_retry(self, old: Turn, before: int) -> None:
        """After a retry: the new turn takes the old one's place only if words came back (a Ctrl-C before the
        first one keeps an empty turn, which is dropped here); else the old turn stays."""
        new = self.turns[before] if len(self.turns) > before else None
        if new is not None and not new.answer:
            self.turns.pop()
            self._forget(new)
            new = None
        if new is None:
            self.turns.append(old)
        else:
            self._forget(old)  # the new answer is kept: only now does the old one go

    def _send(self, job: "Job", on_text) -> "Result":
        from ..errors import RunStopped

        try:
            result = self.runner.run(job, on_text)
        except RunStopped as stopped:
            self._keep(stopped.results[-1])
            raise
        self._keep(result)
        return result

    def _forget(self, turn: Turn) -> None:
        """Mark a turn forgotten in the history; it has left the conversation already, whatever the file says."""
        recorder = self.runner.recorder
        if turn.turn_id is None or (recorder is not None and recorder.broken):
            return
        import sqlite3

        from ..errors import MmcliError
        from ..core.history.follow import opened_history

        try:
            with opened_history(write=True) as history:
                history.forget_turn(turn.turn_id)
        except (sqlite3.Error, OSError, MmcliError) as exc:
            reason = exc.message() if isinstance(exc, MmcliError) else str(exc)
            self.ctx.events.warn(f"the history still lists turn {turn.turn_id} ({reason}); "
                                 "it is left out of this chat all the same")

    def set_model(self, model: str) -> None:
        """Send the next questions to another model of the same endpoint."""
        target = replace(self.runner.target, model=model)
        self.runner.target = target
        self.ctx = replace(self.ctx, target=target)

    # ---- the context

    def meter(self) -> Meter:
        """Tokens used and the limit, from the plan (media) and the server's last counts."""
        visual = sum(item.visual_tokens or 0 for turn in self.turns if not turn.pruned for item in turn.items)
        return Meter(visual, self.last_usage.get("prompt_tokens"), self.last_usage.get("completion_tokens"),
                     self._limit())

    def _limit(self) -> Optional[int]:
        from ..core.endpoint import context_limit

        return context_limit(self.runner.target)

    def prune_to_fit(self, job: "Job") -> list[str]:
        """Leave out the oldest media (never the last KEEP_RECENT turns') until `job` fits the context;
        the names of what was left out. Later turns stay byte for byte as they were sent."""
        from ..errors import UsageError
        from ..core.verify import check_fits

        limit = self._limit()
        names: list[str] = []
        while limit:
            try:
                check_fits(self.runner.plan(job), limit, job.generation.max_tokens)
                return names
            except UsageError:
                candidates = [t for t in self.turns[:-KEEP_RECENT] if t.items and not t.pruned]
                if not candidates:
                    return names
                names += prune_turn(candidates[0])
                job.earlier = self.earlier()
        return names


@contextmanager
def files_not_folders() -> Iterator[None]:
    """A folder given to the chat: the hint names the files in it (the chat has no --each)."""
    from ..errors import MediaError

    try:
        yield
    except MediaError as exc:
        if exc.why == "it is a directory":
            exc.hint = f"the chat takes files, not folders: pass the files in it, e.g. {exc.where.rstrip('/')}/*.jpg"
        raise


def prune_turn(turn: Turn) -> list[str]:
    """Replace a turn's media parts with one short text each; the names of what went."""
    from ..core.wire import text_part

    names = [item.source for item in turn.items]
    notes = [text_part(f"[{item.kind} {item.source} left out to save context]") for item in turn.items]
    content: list = []
    parts = turn.question.get("content")
    for part in parts if isinstance(parts, list) else []:
        if part.get("type") not in MEDIA_TYPES:
            content.append(part)
        elif notes:  # every note where the first medium was
            content += notes
            notes = []
    turn.question = {**turn.question, "content": content}
    turn.pruned = True
    return names
