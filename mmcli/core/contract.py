"""What the driver asks of a task: the interface every task in mmcli.tasks implements. The core names no
task; a task's own planned jobs (docqa's pages, detect's target) stay the task's business."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional, Protocol

if TYPE_CHECKING:
    from ..settings import MediaOptions
    from .flow import Context
    from .job import Job
    from .runner import Result, Runner, TextFn


class PlannedJobs(Protocol):
    """The jobs of one run as planned by a task; the driver reads only the jobs themselves."""

    jobs: list["Job"]


class Task(Protocol):
    """One task as the driver runs it (mmcli.tasks.specs.TaskSpec is the base every task extends)."""

    name: str

    def allowed(self, options: Any) -> tuple[str, ...]:
        """The kinds of input this task takes."""

    def select(self, checked: list, options: Any, media: "MediaOptions") -> Any:
        """Checks and choices made on the read inputs, before any server is asked."""

    def plan_jobs(self, selection: Any, prompt: str, options: Any, ctx: "Context") -> PlannedJobs:
        """The jobs to send."""

    def requests(self, planned: PlannedJobs) -> Iterable[Any]:
        """What is sent, one request at a time."""

    def send(self, runner: "Runner", request: Any, planned: PlannedJobs, on_text: Optional["TextFn"]
             ) -> list["Result"]:
        """Send one request; its results, one per job."""

    def follow_up(self, planned: PlannedJobs, results: list["Result"], ctx: "Context") -> Optional["Job"]:
        """One more job built from the answers, or None."""

    def finish(self, planned: PlannedJobs, results: list["Result"], warnings: list[str]) -> Any:
        """The task's value from its results (pure)."""
