"""What every task shares: the target, the options, and where it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..job import Content, Job

if TYPE_CHECKING:
    from ..config import GenerationOptions, MediaOptions
    from ..endpoint import Target
    from ..events import Events


@dataclass
class Context:
    """A task's surroundings: where requests go, how media and answers are shaped, who hears about it."""

    target: "Target"
    media: "MediaOptions"
    generation: "GenerationOptions"
    events: "Events"

    def job(self, content: list[Content], prompt: str, label: str = "", **context: object) -> Job:
        """A job for this target with these options."""
        return Job(content=content, prompt=prompt, model=self.target.model, family=self.target.family,
                   generation=self.generation, label=label, context=dict(context))


def total_usage(usages: list[dict]) -> dict:
    """Token counts summed over several requests."""
    total: dict = {}
    for usage in usages:
        for key, value in usage.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
    return total
