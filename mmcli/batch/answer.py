"""One piece of work, answered through the one driver: inputs read and checked, the task's jobs, the
Runner, the task's finish and its fields. Nothing here prints: the fields become one line of the results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .work import ALLOWED, Work

if TYPE_CHECKING:
    from ..core.runner import Runner
    from ..tasks.common import Context
    from ..tasks.specs import Planned


def task_options(work: Work) -> Any:
    """The task's own options for the driver (a video's sampling and sound track, ask's audio and, from the
    Python API, its video sampling, docqa's and detect's options)."""
    from ..tasks.specs import AskOptions

    if work.command == "video":
        return AskOptions(sampling=work.task, sound=work.audio, only_video=True)
    if work.command == "ask":
        return AskOptions(sampling=work.task, audio=work.audio)
    return work.task


def prepared(work: Work, ctx: "Context") -> "Planned":
    """The jobs of `work`, built but not sent."""
    from ..core.driver import prepare
    from ..core.inputs import read_inputs
    from ..tasks.specs import TASKS

    checked = read_inputs(list(work.inputs), work.media, ctx.target.settings.endpoint.timeout, ctx.events.warn,
                          ALLOWED[work.command])
    return prepare(TASKS[work.command], checked, work.prompt, task_options(work), ctx)


def answer(work: Work, runner: "Runner", ctx: "Context") -> dict:
    """Run `work` to the end and return its fields; a failure raises its error with the partial value's
    fields on `.partial_fields`, so what was answered is kept on the line."""
    from ..core.driver import Presenter, execute
    from ..tasks.specs import TASKS

    task = TASKS[work.command]
    planned = prepared(work, ctx)
    try:
        return task.fields(execute(task, planned, runner, ctx, Presenter(ctx.events)))
    except BaseException as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None and task.answered(partial):
            exc.partial_fields = task.fields(partial)
        raise
