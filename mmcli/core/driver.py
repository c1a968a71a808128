"""The one driver: settings -> inputs -> endpoint -> jobs -> Runner -> the task's finish -> a presenter.

Every command, `--each` line, and `mmcli.Client` method runs through `drive` (or, when its inputs are
already read and its endpoint known, `execute`). Tasks differ by data (mmcli.tasks.specs, through the
interface in mmcli.core.contract); what is shown differs by presenter: the CLI's views (mmcli.cli.output), the
Python API's silent one, a results line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..errors import RunStopped
from ..events import Events

if TYPE_CHECKING:
    from ..settings import CommonOptions
    from .job import Job
    from .runner import Result, Runner, TextFn
    from .flow import Context
    from .contract import PlannedJobs, Task


class Presenter:
    """What a run shows, step by step. This base shows nothing: the Python API and results lines use it."""

    def __init__(self, events: Optional[Events] = None) -> None:
        self.events = events if events is not None else Events()

    def before_connect(self, selection: Any) -> None:
        """The inputs are read and checked; no server has been asked or started yet."""

    def dry_run(self, runner: "Runner", planned: "PlannedJobs") -> Any:
        """--dry-run: the plans of every request; nothing is sent."""
        return [runner.plan(job) for job in planned.jobs]

    def begin(self, job: "Job", planned: "PlannedJobs") -> Optional["TextFn"]:
        """A request is about to be sent (a job; for embed, a batch of jobs); returns where its text goes as it
        streams (None: nowhere)."""
        return None

    def done(self, result: "Result", planned: "PlannedJobs") -> None:
        """A job came back whole."""

    def finished(self, value: Any, planned: "PlannedJobs") -> None:
        """Every request came back: the task's value."""

    def stopped(self, value: Any, planned: "PlannedJobs", cause: BaseException) -> None:
        """The run stopped early (an error or Ctrl-C): the value of what was answered, then `cause` is raised."""


class TextOnly(Presenter):
    """Shows nothing, but hands streamed text to a function when given one (the Python API)."""

    def __init__(self, on_text: Optional["TextFn"] = None) -> None:
        super().__init__()
        self.on_text = on_text

    def begin(self, job: "Job", planned: "PlannedJobs") -> Optional["TextFn"]:
        """Where the text goes."""
        return self.on_text


def drive(task: "Task", inputs: list, prompt: str, options: Any, opts: "CommonOptions", presenter: Presenter,
          environ: Optional[Mapping[str, str]] = None) -> Any:
    """Run one command: settings, inputs checked, endpoint, jobs, sending, finish; what the presenter shows."""
    from .flow import connect, open_inputs

    events = presenter.events
    opened = open_inputs(inputs, opts, events, task.allowed(options), environ)
    selection = task.select(opened.checked, options, opts.media)
    presenter.before_connect(selection)
    started = connect(opened, opts, events, environ)
    recorder = started.runner.recorder
    if recorder is not None and not recorder.command:
        recorder.command = task.name  # the history says which command each turn came from
    planned = task.plan_jobs(selection, prompt, options, started.ctx)
    if opts.output.dry_run:
        shown = presenter.dry_run(started.runner, planned)
        check_fits_known(started.runner, planned)
        return shown
    try:
        return execute(task, planned, started.runner, started.ctx, presenter)
    finally:
        if recorder is not None:
            recorder.close()  # the run is over: its answers may be kept for long, the database need not be


def check_fits_known(runner: "Runner", planned: "PlannedJobs") -> None:
    """A dry run says what the live run would do: a request over the model's known context is refused (exit 2)
    after its plan was shown. Only what is known is used; a dry run asks the endpoint nothing."""
    from .verify import check_fits

    limit = runner.target.max_model_len
    if limit is None:
        return
    for job in planned.jobs:
        check_fits(runner.plan(job), limit, job.generation.max_tokens)


def prepare(task: "Task", checked: list, prompt: str, options: Any, ctx: "Context") -> "PlannedJobs":
    """The jobs of inputs already read, for an endpoint already known (a many-file run's line, an export)."""
    return task.plan_jobs(task.select(checked, options, ctx.media), prompt, options, ctx)


def execute(task: "Task", planned: "PlannedJobs", runner: "Runner", ctx: "Context", presenter: Presenter) -> Any:
    """Send every request (and the follow-up a task asks for), then finish. A stopped run finishes what was
    answered, shows it, and raises the cause with that value on `.partial`."""
    results: list = []
    try:
        for request in task.requests(planned):
            _send(task, runner, request, planned, presenter, results)
        follow_up = task.follow_up(planned, results, ctx)
        if follow_up is not None:
            _send(task, runner, follow_up, planned, presenter, results)
    except RunStopped as stopped:
        last = stopped.results[-1] if stopped.results else None
        if last is not None and not any(last is r for r in results):
            results.append(last)  # the request that stopped: a partial answer, or only its error
        _stop(task, planned, results, ctx, presenter, stopped.cause)
    except KeyboardInterrupt as exc:  # between requests (the next pages being rendered): what came is kept too
        if not results:
            raise  # nothing answered yet: nothing to keep (ask's finish needs its one answer)
        _stop(task, planned, results, ctx, presenter, exc)
    value = task.finish(planned, results, ctx.events.warnings)
    presenter.finished(value, planned)
    return value


def _send(task: "Task", runner: "Runner", request: Any, planned: "PlannedJobs", presenter: Presenter,
          results: list) -> None:
    got = task.send(runner, request, planned, presenter.begin(request, planned))
    results.extend(got)  # before they are shown: a Ctrl-C while showing them loses none
    for result in got:
        presenter.done(result, planned)


def _stop(task: "Task", planned: "PlannedJobs", results: list, ctx: "Context", presenter: Presenter,
          cause: BaseException) -> None:
    """Finish what was answered, show it, and raise `cause` with that value on `.partial`."""
    value = task.finish(planned, results, ctx.events.warnings)
    presenter.stopped(value, planned, cause)
    cause.partial = value
    raise cause from None
