"""How the CLI shows an answer: streamed as it arrives, or one JSON object at the end (also on failure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from mmcli.core.driver import Presenter
from mmcli.tasks.common import check_result

if TYPE_CHECKING:
    from mmcli.core.job import Job
    from .render import Output
    from mmcli.core.runner import Result
    from mmcli.tasks.specs import Planned, TaskSpec


class StreamedText:
    """One answer shown as it streams: a spinner until the first piece, then the answer sink."""

    def __init__(self, out: "Output", shown: bool = True) -> None:
        self.out = out
        self.stop_spinner = out.start_spinner("waiting for the model")
        self.sink = None
        self.shown = shown  # False: a structured answer, printed whole once it is checked

    def write(self, delta: str) -> None:
        """Show one more piece."""
        if not self.shown:
            return
        if self.sink is None:
            self.stop_spinner()
            self.sink = self.out.answer_sink()
        self.sink.write(delta)

    def close(self) -> None:
        """The answer is over, whole or not: what was shown stays shown."""
        self.stop_spinner()
        if self.sink is not None:
            self.sink.close()
            self.sink = None


def structured(job: "Job") -> bool:
    """Whether `job`'s answer is checked against a --schema: then it is printed whole, never streamed."""
    from mmcli.schema import checked

    return checked(job.generation.schema)


def show_unstreamed(job: "Job", text: object, out: "Output") -> None:
    """A structured answer that stopped (it did not match, or was cut): its text was not streamed, so it is
    printed now; nothing the endpoint sent is lost."""
    if structured(job) and isinstance(text, str) and text:
        out.line(text)


def cli_json(task: "TaskSpec", value: Any, plan=None, error: Optional[str] = None) -> dict:
    """The --json object: the task's fields, the full plan where the CLI has it, and the error of a stopped run."""
    data = task.fields(value)
    if plan is not None and hasattr(plan, "to_dict"):
        data["plan"] = plan.to_dict()
    if error is not None:
        data["error"] = error
    return data


def reason(cause: BaseException) -> str:
    """How a stopped run's cause is named in output."""
    return cause.message() if hasattr(cause, "message") else "interrupted"


class AnswerView(Presenter):
    """ask and video on the CLI: the answer streamed; with --json, one object at the end."""

    def __init__(self, out: "Output", task: "TaskSpec") -> None:
        super().__init__(out)
        self.out, self.task = out, task
        self.stream: Optional[StreamedText] = None

    def dry_run(self, runner, planned: "Planned") -> None:
        """The plan of the one request."""
        self.out.show_plan(runner.plan(planned.jobs[0]))

    def begin(self, job: "Job", planned: "Planned"):
        """Show the answer as it arrives."""
        self.stream = StreamedText(self.out, shown=not structured(job))
        return self.stream.write

    def done(self, result: "Result", planned: "Planned") -> None:
        """The answer is whole: warn about what it says of the plan."""
        self._close()
        check_result(result, self.out)

    def finished(self, value, planned: "Planned") -> None:
        """--json: the object."""
        if self.out.json_mode:
            self.out.emit_json(cli_json(self.task, value, value.plan))
        elif value.structured:
            self.out.emit_value(value.data)

    def stopped(self, value, planned: "Planned", cause: BaseException) -> None:
        """What arrived stays shown; --json gets the object with the error."""
        self._close()
        if self.out.json_mode:
            self.out.emit_json(cli_json(self.task, value, value.plan, reason(cause)))
        else:
            show_unstreamed(planned.jobs[-1], value.text, self.out)

    def _close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
