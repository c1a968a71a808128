"""One piece of work, answered: inputs checked, jobs built by the tasks, sent by the Runner, finished purely.

Nothing here prints: the fields returned become one line of the results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..tasks.common import result_warnings, total_usage
from .work import ALLOWED, Work

if TYPE_CHECKING:
    from ..inputs import CheckedInput
    from ..plan import Plan
    from ..runner import Result, Runner
    from ..tasks.common import Context


def answer(work: Work, runner: "Runner", ctx: "Context") -> dict:
    """Run `work` to the end; raises MmcliError or RunStopped when it fails."""
    from ..inputs import read_inputs

    checked = read_inputs(list(work.inputs), work.media, ctx.target.settings.endpoint.timeout,
                           ctx.events.warn, ALLOWED[work.command])
    return ANSWERERS[work.command](work, checked, runner, ctx)


def plan_summary(plan: "Plan") -> dict:
    """What the results keep of a plan: totals and each item's sizes, no payload."""
    keep = ("source", "kind", "original_width", "original_height", "sent_width", "sent_height", "visual_tokens",
            "bytes")
    return {"totals": plan.totals(), "items": [{k: item.summary()[k] for k in keep} for item in plan.items]}


def result_fields(result: "Result") -> dict:
    """The fields of one answered request."""
    return {"answer": result.answer, "model": result.model or result.job.model,
            "finish_reason": result.finish_reason, "usage": result.usage, "verified": result.verified,
            "plan": plan_summary(result.plan)}


def _ask(work: Work, checked: list["CheckedInput"], runner: "Runner", ctx: "Context") -> dict:
    from ..tasks.ask import ask_job

    result = runner.run(ask_job(checked, work.prompt, ctx, work.task))
    ctx.events.warnings.extend(result_warnings(result))
    return result_fields(result)


def _docqa(work: Work, checked: list["CheckedInput"], runner: "Runner", ctx: "Context") -> dict:
    from ..tasks.docqa import answer_document, choose_pages, doc_jobs

    jobs = doc_jobs(choose_pages(checked, work.task), work.prompt, work.task, ctx)
    found = answer_document(runner, jobs, work.prompt, ctx)
    fields = {"answer": found.text if found.data is None else found.data, "pages": found.pages, "mode": jobs.mode, "finish_reason": found.finish_reason,
              "usage": found.usage, "verified": found.verified}
    if found.batches:
        fields["batches"] = found.batches
    if found.plan is not None:
        fields["plan"] = plan_summary(found.plan)
    return fields


def _detect(work: Work, checked: list["CheckedInput"], runner: "Runner", ctx: "Context") -> dict:
    from ..tasks.detect import choose, detect_jobs, ground_result

    jobs = detect_jobs(choose(checked, work.task, work.media.pass_url), work.task, ctx)
    results = runner.run_all(jobs)
    found = [ground_result(r) for r in results]
    for result in results:
        ctx.events.warnings.extend(f"{result.job.label}: {w}" for w in result_warnings(result))
    checks = [r.verified for r in results]
    return {"detections": [_detection_entry(f) for f in found], "model": runner.target.model,
            "usage": total_usage([r.usage for r in results]),
            "verified": None if None in checks else all(checks),
            "plan": {"totals": _sum_totals([r.plan.totals() for r in results])}}


def _detection_entry(found) -> dict:
    entry = found.to_dict()
    entry.pop("usage", None)  # summed on the line
    return entry


def _sum_totals(totals: list[dict]) -> dict:
    tokens = [t["visual_tokens"] for t in totals]
    return {"items": sum(t["items"] for t in totals), "visual_tokens": None if None in tokens else sum(tokens),
            "bytes": sum(t["bytes"] for t in totals), "request_bytes": sum(t["request_bytes"] for t in totals)}


ANSWERERS: dict[str, Callable[..., dict]] = {"ask": _ask, "video": _ask, "docqa": _docqa, "detect": _detect}
