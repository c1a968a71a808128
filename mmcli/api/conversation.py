"""The Python API's conversation: follow-up questions to one client, logged like the CLI's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..media.item import MediaItem
    from ..tasks.ask import Answer


@dataclass
class Exchange:
    """One question of a conversation, as it was sent, and its answer."""

    prompt: str
    answer: str
    media: list[str] = field(default_factory=list)  # the sources of the media the question carried
    question: dict = field(default_factory=dict, repr=False)  # the message as sent
    items: list["MediaItem"] = field(default_factory=list, repr=False)


class Conversation:
    """Questions that follow one another: `.ask` sends the earlier ones and their answers byte for byte,
    so a vLLM server's prefix and media caches hit; `.attach` adds media to the next question."""

    def __init__(self, client, cid: Optional[str] = None, system: Optional[str] = None,
                 log: Optional[bool] = None) -> None:
        self.client = client  # the mmcli.Client whose endpoint and options every question uses
        from ..core.history.store import new_id

        self.cid = cid or new_id()  # chosen now: the history files every question under it
        self.system = system
        self.log = log
        self.history: list[Exchange] = []
        self._pending: list = []
        if cid is not None:
            self._load(cid)

    def __repr__(self) -> str:
        return f"mmcli.Conversation(cid={self.cid!r}, turns={len(self.history)})"

    def _load(self, cid: str) -> None:
        from ..core.history.follow import conversation_id, opened_history, restored_turns

        with opened_history() as history:
            turns = restored_turns(history, conversation_id(history, cid))
        self.history = [Exchange(turn.prompt, turn.answer, [i.source for i in items], question, items)
                        for turn, question, items in turns]
        if self.system is None and turns:
            self.system = turns[-1][0].system

    def attach(self, *inputs) -> None:
        """Media (paths, URLs, bytes, PIL images, arrays) for the next question; each is read and checked
        now (a URL when the question is asked), so a bad one raises here and is not kept."""
        from ..settings import MediaOptions
        from ..core.inputs import read_inputs
        from ..media.sources import is_url

        for spec in inputs:
            if not (isinstance(spec, str) and (is_url(spec) or spec.lower().startswith("data:"))):
                read_inputs([spec], MediaOptions(), 60.0, lambda message: None, allowed=("image", "video", "audio"))
        self._pending += list(inputs)

    @property
    def attached(self) -> list:
        """The media waiting for the next question, in order."""
        return list(self._pending)

    def drop(self, number: Optional[int] = None) -> None:
        """Take attachment `number` (1-based, as in `attached`) off the next question; all of them when None."""
        if number is None:
            self._pending = []
            return
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(self._pending):
            from ..errors import UsageError

            raise UsageError("no such attachment", where=repr(number),
                             hint=f"there are {len(self._pending)}: number them from 1, or drop() them all")
        del self._pending[number - 1]

    def ask(self, prompt: str, inputs=None, **options) -> "Answer":
        """Ask the next question (with the attached media, and `inputs`); options as Client.ask's."""
        from ..core.job import Earlier
        from ..core.wire import assistant_message, system_message

        messages = [system_message(self.system)] if self.system else []
        for exchange in self.history:
            messages += [exchange.question, assistant_message(exchange.answer)]
        earlier = Earlier(self.cid, messages, [i for e in self.history for i in e.items])
        given = list(inputs) if isinstance(inputs, (list, tuple)) else ([] if inputs is None else [inputs])
        answer = self.client._turn(self._pending + given, prompt, options, earlier, self.log)
        self._pending = []
        plan = answer.plan
        items = list(plan.items[len(earlier.items):]) if plan is not None else []
        self.history.append(Exchange(prompt, answer.text, [i.source for i in items],
                                     plan.request["messages"][-1] if plan is not None else {}, items))
        return answer
