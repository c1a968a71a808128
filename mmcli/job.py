"""A Job: everything one request needs, before it is turned into the wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Union

from .media.item import MediaItem

if TYPE_CHECKING:
    from .config import GenerationOptions
    from .models import Family


@dataclass(frozen=True)
class Text:
    """A piece of text sent among the media, such as a page label."""

    text: str


Content = Union[Text, MediaItem]


@dataclass
class Earlier:
    """The conversation a follow-up continues: its messages as they were sent, and the media they hold."""

    cid: str
    messages: list[dict]  # system prompt first (if any), then each earlier question and answer
    items: list[MediaItem] = field(default_factory=list)


@dataclass
class Job:
    """One request: content in order, the prompt after it, the model and how to generate."""

    content: list[Content]
    prompt: str
    model: Optional[str]
    family: "Family"
    generation: "GenerationOptions"
    label: str = ""  # how progress and errors name this job
    context: dict = field(default_factory=dict)  # what the finisher needs: sizes, pages, paths
    listed: Optional[list[MediaItem]] = None  # what the plan lists instead of the content (a merge's pages)
    earlier: Optional[Earlier] = None  # a follow-up's conversation so far, sent before this question

    @property
    def items(self) -> list[MediaItem]:
        """The media of this job, in order."""
        return [part for part in self.content if isinstance(part, MediaItem)]

    @property
    def plan_items(self) -> list[MediaItem]:
        """What the plan lists: the media sent, or what a text-only job answers about."""
        earlier = self.earlier.items if self.earlier is not None else []
        return earlier + (self.items if self.listed is None else self.listed)

    @property
    def sent_items(self) -> list[MediaItem]:
        """Every media item the request carries: the conversation's earlier ones, then this job's."""
        return (self.earlier.items if self.earlier is not None else []) + self.items
