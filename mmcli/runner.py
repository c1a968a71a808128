"""The one sender: jobs become requests, go out with retries, and come back as Results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from .errors import MmcliError
from .job import Job
from .plan import Plan

if TYPE_CHECKING:
    from .endpoint import Target

TextFn = Callable[[str], None]
StatusFn = Callable[[str], None]


@dataclass
class Result:
    """What one job came back with: the answer (whole or partial), usage, and the error if it failed."""

    job: Job
    plan: Plan
    text: str = ""
    model: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: dict = field(default_factory=dict)
    error: Optional[MmcliError] = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Whether the answer arrived whole."""
        return self.error is None and not self.interrupted

    @property
    def planned_visual_tokens(self) -> Optional[int]:
        """The visual tokens the plan counted, when every item's cost is known."""
        return self.plan.totals()["visual_tokens"]

    @property
    def verified(self) -> Optional[bool]:
        """False when the server counted fewer prompt tokens than the plan's visual tokens; None: unknown."""
        planned, prompt = self.planned_visual_tokens, self.usage.get("prompt_tokens")
        if not planned or not isinstance(prompt, int):
            return None
        return prompt >= planned


class RunStopped(Exception):
    """A run ended early (an error or Ctrl-C): the results so far, the last one possibly partial."""

    def __init__(self, results: list[Result], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.results = results
        self.cause = cause


class Runner:
    """Sends jobs to one target; keeps every result, so a stopped run loses nothing already answered."""

    def __init__(self, target: "Target", status: Optional[StatusFn] = None, pacer=None) -> None:
        self.target = target
        self.status = status
        self.pacer = pacer  # shared by the senders of a many-job run (mmcli.batch.pacing.Pacer)
        self.results: list[Result] = []

    def plan(self, job: Job, *, stream: Optional[bool] = None) -> Plan:
        """The exact request for `job` and what is known about it."""
        from .messages import build_request

        endpoint = self.target.settings.endpoint
        request = build_request(job, endpoint.quirks, stream=stream)
        items = job.context.get("listed_items", job.items)  # a merge lists the pages it answers about
        return Plan(model=job.model, family=job.family.name, base_url=endpoint.base_url, items=items,
                    request=request, family_source=self.target.family_source)

    def run(self, job: Job, on_text: Optional[TextFn] = None, *, stream: Optional[bool] = None) -> Result:
        """Send one job; the Result is kept even when the job fails (then RunStopped is raised)."""
        from . import client

        plan = self.plan(job, stream=stream)
        result = Result(job, plan)
        try:
            answer = client.chat(self.target.settings.endpoint, plan.request, on_text=on_text, status=self.status,
                                 pacer=self.pacer)
        except client.PartialAnswerError as exc:
            _copy_answer(result, exc.partial)
            result.error = exc
        except MmcliError as exc:
            result.error = exc
        except KeyboardInterrupt as exc:
            result.interrupted = True
            self.results.append(result)
            raise RunStopped(self.results, exc) from None
        else:
            _copy_answer(result, answer)
        self.results.append(result)
        if result.error is not None:
            raise RunStopped(self.results, result.error)
        return result

    def run_all(self, jobs: Iterable[Job], on_text: Optional[Callable[[Job], Optional[TextFn]]] = None,
                before: Optional[Callable[[Job], None]] = None,
                after: Optional[Callable[[Result], None]] = None) -> list[Result]:
        """Send jobs one after another; `before`/`after` see each one, `on_text(job)` gives its text sink."""
        done = []
        for job in jobs:
            if before:
                before(job)
            result = self.run(job, on_text(job) if on_text else None)
            if after:
                after(result)
            done.append(result)
        return done


def _copy_answer(result: Result, answer) -> None:
    result.text = answer.text
    result.model = answer.model
    result.finish_reason = answer.finish_reason
    result.usage = dict(answer.usage)
