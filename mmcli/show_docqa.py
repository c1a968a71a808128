"""How the CLI shows docqa: one streamed answer, batches with progress and a streamed merge, or page by page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .errors import MmcliError
from .media.pdf import format_pages
from .messages import request_size, shorten_data_urls
from .present import check_result, stream_answer
from .runner import RunStopped
from .tasks.docqa import batch_dict, batch_usage, merge_job

if TYPE_CHECKING:
    from .render import Output
    from .runner import Result, Runner
    from .tasks.common import Context
    from .tasks.docqa import DocJobs


def show_answer(runner: "Runner", jobs: "DocJobs", question: str, ctx: "Context", out: "Output") -> None:
    """Run and show every request of a docqa run; what was answered is printed even when it stops."""
    if jobs.mode == "single":
        stream_answer(runner, jobs.jobs[0], out, extra={"pages": jobs.numbers})
    elif jobs.mode == "per-page":
        _per_page(runner, jobs, out)
    else:
        _in_batches(runner, jobs, question, ctx, out)


def _in_batches(runner: "Runner", jobs: "DocJobs", question: str, ctx: "Context", out: "Output") -> None:
    """Map: one request per batch of pages, with progress. Reduce: one streamed merge request."""
    with out.steps(len(jobs.jobs) + 1, "reading pages") as steps:
        try:
            answers = runner.run_all(jobs.jobs, before=lambda job: steps.begin(job.label),
                                     after=lambda result: _batch_done(result, steps, out))
        except RunStopped as stopped:
            steps.close()
            kept = [r for r in stopped.results if r.ok or r.text]  # a rejected batch has nothing to show
            report_partial(kept, _reason(stopped.cause), out, runner)
            raise stopped.cause from None
        steps.begin(f"merging {len(answers)} partial answers")
    merge = merge_job(question, answers, jobs, ctx)
    extra = {"pages": jobs.numbers, "batches": [batch_dict(a) for a in answers], "batch_usage": batch_usage(answers)}
    try:
        stream_answer(runner, merge, out, extra=extra)
    except KeyboardInterrupt:
        report_partial(answers, "interrupted", out, runner)
        raise
    except MmcliError as exc:  # the batch answers are still worth showing
        if not out.json_mode:  # with --json, the merge's partial JSON already carries the batches
            report_partial(answers, exc.message(), out, runner)
        raise


def _batch_done(result: "Result", steps, out: "Output") -> None:
    if result.finish_reason == "length":
        out.warn(f"the answer for {result.job.label} stopped at the token limit")
    steps.advance()


def _reason(cause: BaseException) -> str:
    return cause.message() if hasattr(cause, "message") else "interrupted"


def report_partial(results: list["Result"], error: str, out: "Output", runner: "Runner") -> None:
    """Print what was answered before the run stopped with `error`, so nothing already paid for is lost."""
    answered = [n for r in results for n in r.job.context["pages"]]
    if out.json_mode:
        out.emit_json({"answer": None, "model": runner.target.model, "pages_answered": answered,
                       "batches": [batch_dict(r) for r in results], "error": error})
        return
    if not results:
        return
    out.warn(f"stopped after pages {format_pages(answered)}; the answers so far are printed")
    for result in results:
        suffix = "" if result.ok else " (incomplete)"
        out.line(f"## Pages {format_pages(result.job.context['pages'])}{suffix}\n\n{result.text.strip()}\n")


def _per_page(runner: "Runner", jobs: "DocJobs", out: "Output") -> None:
    """One request per page; one result per page (a JSON line each with --json), printed as it comes."""
    for job in jobs.jobs:
        line = {"page": job.context["pages"][0], "source": job.context["source"],
                "source_page": job.context["source_page"]}
        if not out.json_mode:
            out.line(f"## {job.label}\n")
            stream_answer(runner, job, out)
            out.line()
            continue
        try:
            result = runner.run(job)
        except RunStopped as stopped:
            partial = stopped.results[-1]
            out.json_line({**line, "answer": partial.text if partial.text or partial.error else None,
                           "error": _reason(stopped.cause)})
            raise stopped.cause from None
        check_result(result, out)
        out.json_line({**line, "answer": result.answer, "model": result.model, "finish_reason": result.finish_reason,
                       "usage": result.usage, "verified": result.verified})


def show_dry_run(runner: "Runner", jobs: "DocJobs", out: "Output") -> None:
    """Every request the run would make, with sizes and visual tokens; nothing is sent."""
    plans = [runner.plan(job) for job in jobs.jobs]
    merge = jobs.mode == "batches"
    items = [p.page.item for p in jobs.pages]
    tokens = [item.visual_tokens for item in items]
    totals = {"pages": len(items), "visual_tokens": None if None in tokens else sum(tokens),
              "bytes": sum(item.bytes for item in items), "requests": len(plans) + int(merge),
              "request_bytes": sum(request_size(p.request) for p in plans)}
    target = runner.target
    summary = {"model": target.model, "family": target.family.name, "family_source": target.family_source,
               "base_url": target.base_url, "mode": jobs.mode, "merge": merge,
               "items": [item.summary() for item in items], "totals": totals,
               "requests": [{"pages": job.context["pages"], "request": shorten_data_urls(plan.request)}
                            for job, plan in zip(jobs.jobs, plans)]}
    if out.json_mode:
        out.emit_json(summary)
        return
    _print_doc_plan(out, plans[0], items, summary)


def _print_doc_plan(out: "Output", first, items, summary: dict) -> None:
    """The dry run as text: the page table, totals, the requests, and the first request in full."""
    from dataclasses import replace

    from .render import plan_table

    console = out.console()
    plan = replace(first, items=items)
    console.print(plan_table(plan))
    totals, requests = summary["totals"], summary["requests"]
    tokens = totals["visual_tokens"]
    console.print(f"model: {plan.model or '(first model the endpoint serves)'}  family: {plan.family}  "
                  f"endpoint: {plan.base_url}")
    console.print(f"total: {totals['pages']} page(s), {'unknown' if tokens is None else f'{tokens:,}'} visual "
                  f"tokens, {totals['bytes']:,} bytes of media")
    groups = " | ".join(format_pages(r["pages"]) for r in requests)
    if summary["mode"] == "batches":
        console.print(f"requests: {len(requests)} batches (pages {groups}), then 1 text-only request "
                      "merging their answers")
    elif summary["mode"] == "per-page":
        console.print(f"requests: {len(requests)}, one per page")
    else:
        console.print("requests: 1")
    console.print("first request (nothing sent):")
    console.print_json(json.dumps(requests[0]["request"], ensure_ascii=False))
