"""A Job: everything one request needs, before it is turned into the wire format.

What a task's finish needs to know about a job beyond its content (the pages a docqa request holds,
the sizes and coordinate space a detect answer is mapped with, where an embedded item came from) is a
typed object on `Job.meta`. The parts that can be written down (`to_dict`/`from_dict`) are exactly what
an exported batch keeps, so `batch collect` finishes its answers with the same code as a live run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

from ..media.item import MediaItem

if TYPE_CHECKING:
    from ..settings import GenerationOptions
    from ..families import Family


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
class DocPart:
    """docqa: the pages one request answers about, as the model cites them (and, page by page, where from)."""

    pages: list[int]
    source: Optional[str] = None
    source_page: Optional[int] = None

    def to_dict(self) -> dict:
        """What an export keeps."""
        return {"pages": list(self.pages), "source": self.source, "source_page": self.source_page}

    @classmethod
    def from_dict(cls, data: dict) -> "DocPart":
        """Back from what an export kept."""
        return cls(list(data.get("pages") or []), data.get("source"), data.get("source_page"))


@dataclass
class Region:
    """detect: the image or page one request asks about, and how its answer maps back to original pixels."""

    source: str
    page: Optional[int]
    sent_size: tuple[int, int]
    original_size: tuple[int, int]
    space: str  # the coordinate space the model answers in (abs | norm1000 | norm1)
    page_size_pt: Optional[tuple[float, float]] = None  # PDF pages: boxes are also given in points
    original: Any = field(default=None, repr=False, compare=False)  # the pixels drawn on; not exported
    names: Any = field(default=None, repr=False, compare=False)  # where drawings and crops go; not exported

    def to_dict(self) -> dict:
        """What an export keeps."""
        return {"source": self.source, "page": self.page, "space": self.space,
                "sent_size": list(self.sent_size), "original_size": list(self.original_size),
                "page_size_pt": list(self.page_size_pt) if self.page_size_pt else None}

    @classmethod
    def from_dict(cls, data: dict) -> "Region":
        """Back from what an export kept."""
        points = data.get("page_size_pt")
        return cls(data["source"], data.get("page"), tuple(data["sent_size"]), tuple(data["original_size"]),
                   data["space"], tuple(points) if points else None)


@dataclass
class Embedded:
    """embed and search: where one embedded item comes from."""

    source: Optional[str]
    page: Optional[int]
    kind: str  # image | page | text
    path: Optional[str] = None
    text: Optional[str] = None  # a text query: the words to embed
    sha256: Optional[str] = None


@dataclass
class Spoken:
    """transcribe: where one uploaded piece sits in its source, in seconds."""

    source: str
    start: float
    end: float


Meta = Union[DocPart, Region, Embedded, Spoken, None]


@dataclass
class Job:
    """One request: content in order, the prompt after it, the model and how to generate."""

    content: list[Content]
    prompt: str
    model: Optional[str]
    family: "Family"
    generation: "GenerationOptions"
    label: str = ""  # how progress and errors name this job
    meta: Meta = None  # what the task's finish needs: pages, sizes, where from
    listed: Optional[list[MediaItem]] = None  # what the plan lists instead of the content (a merge's pages)
    earlier: Optional[Earlier] = None  # a follow-up's conversation so far, sent before this question
    named_warnings: bool = False  # warnings about this job's answer name it (one of several images)

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
