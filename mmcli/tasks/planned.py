"""The jobs of one run as the driver holds them between planning and finishing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..core.job import Job
    from .docqa import DocJobs


@dataclass
class Planned:
    """The jobs of one run, and what its finish needs to know about them as a whole."""

    jobs: list["Job"]
    prompt: str
    doc: Optional["DocJobs"] = None  # docqa: the pages, the mode, and the requests
    target: str = ""  # detect: what to find
    mode: str = "single"  # docqa: single | batches | per-page
    numbers: list[int] = field(default_factory=list)  # docqa: every page number, as cited
