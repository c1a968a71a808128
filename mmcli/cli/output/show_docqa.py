"""How the CLI shows docqa: one streamed answer, batches with progress and a streamed merge, or page by page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

from mmcli.core.driver import Presenter
from mmcli.media.pdf import format_pages
from mmcli.core.wire import request_size, shorten_data_urls
from .show_answer import StreamedText, check_result, cli_json, reason, show_unstreamed, structured
from mmcli.urls import masked_url

if TYPE_CHECKING:
    from mmcli.core.job import Job
    from .render import Output
    from mmcli.core.runner import Result, Runner
    from mmcli.tasks.docqa import DocAnswer, DocJobs
    from mmcli.tasks.specs import Planned, TaskSpec


class DocqaView(Presenter):
    """docqa on the CLI: one streamed answer; batches with progress and a streamed merge; or page by page.
    What was answered is printed even when the run stops."""

    def __init__(self, out: "Output", task: "TaskSpec") -> None:
        super().__init__(out)
        self.out, self.task = out, task
        self.stream: Optional[StreamedText] = None
        self.steps = None

    def dry_run(self, runner: "Runner", planned: "Planned") -> None:
        """Every request the run would make."""
        show_dry_run(runner, planned.doc, self.out)

    def begin(self, job: "Job", planned: "Planned"):
        """Batches advance the progress bar; the merge, a single request and (as text) each page stream."""
        mode = planned.doc.mode
        if mode == "batches" and job.listed is None:
            if self.steps is None:
                self.steps = self.out.steps(len(planned.jobs) + 1, "reading pages").__enter__()
            self.steps.begin(job.label)
            return None
        if mode == "batches":
            self._close_steps(f"merging {len(planned.jobs)} partial answers")
        if mode == "per-page" and self.out.json_mode:
            return None
        if mode == "per-page" and not structured(job):  # a structured page is one JSON value, no heading
            self.out.line(f"## {job.label}\n")
        self.stream = StreamedText(self.out, shown=not structured(job))
        return self.stream.write

    def done(self, result: "Result", planned: "Planned") -> None:
        """Warnings about each answer; page by page, each page's result as it comes."""
        self._close_stream()
        if planned.doc.mode == "batches" and result.job.listed is None:
            if result.finish_reason == "length":
                self.out.warn(f"the answer for {result.job.label} stopped at the token limit")
            self.steps.advance()
            return
        check_result(result, self.out)
        if planned.doc.mode == "per-page":
            if self.out.json_mode:
                self.out.json_line({**_page_line(result.job), "answer": result.answer, "model": result.model,
                                    "finish_reason": result.finish_reason, "usage": result.usage,
                                    "verified": result.verified})
            elif result.structured:
                self.out.emit_value(result.value)
            else:
                self.out.line()

    def finished(self, value: "DocAnswer", planned: "Planned") -> None:
        """--json: the one object (page by page: the lines are already out)."""
        if planned.doc.mode == "per-page":
            return
        if self.out.json_mode:
            self.out.emit_json(cli_json(self.task, value, value.plan))
        elif value.structured:
            self.out.emit_value(value.data)

    def stopped(self, value: "DocAnswer", planned: "Planned", cause: BaseException) -> None:
        """Show what was answered before the run stopped, so nothing already paid for is lost."""
        self._close_stream()
        self._close_steps()
        mode = planned.doc.mode
        if mode == "per-page":
            if self.out.json_mode and value.batches:
                last = value.batches[-1]
                self.out.json_line({"page": last["pages"][0], "answer": last["answer"] or None,
                                    "error": reason(cause)})
            elif value.batches:
                show_unstreamed(planned.jobs[0], value.batches[-1]["answer"], self.out)
            return
        if self.out.json_mode:
            self.out.emit_json(cli_json(self.task, value, value.plan, reason(cause)))
            return
        if mode == "batches" and value.batches:
            _print_batches(value, self.out)
        show_unstreamed(planned.jobs[-1], value.text, self.out)

    def _close_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _close_steps(self, next_step: Optional[str] = None) -> None:
        if self.steps is not None:
            if next_step:
                self.steps.begin(next_step)
            self.steps.close()
            self.steps = None


def _page_line(job: "Job") -> dict:
    meta = job.meta
    return {"page": meta.pages[0], "source": meta.source, "source_page": meta.source_page}


def _print_batches(value: "DocAnswer", out: "Output") -> None:
    answered = [n for b in value.batches for n in b["pages"]]
    out.warn(f"stopped after pages {format_pages(answered)}; the answers so far are printed")
    for batch in value.batches:
        suffix = " (incomplete)" if batch.get("complete") is False else ""
        answer = batch["answer"]  # text, or the object a batch under --schema checked out to
        text = answer.strip() if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        out.line(f"## Pages {format_pages(batch['pages'])}{suffix}\n\n{text}\n")


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
               "base_url": masked_url(target.base_url), "mode": jobs.mode, "merge": merge,
               "items": [item.summary() for item in items], "totals": totals,
               "requests": [{"pages": job.meta.pages, "request": shorten_data_urls(plan.request)}
                            for job, plan in zip(jobs.jobs, plans)]}
    if out.json_mode:
        out.emit_json(summary)
        return
    _print_doc_plan(out, plans[0], items, summary)


def _print_doc_plan(out: "Output", first, items, summary: dict) -> None:
    """The dry run as text: the page table, totals, the requests, and the first request in full."""
    from dataclasses import replace

    from .render import plan_table
    from mmcli.terminal import plain
    from mmcli.urls import masked_url

    console = out.console()
    plan = replace(first, items=items)
    console.print(plan_table(plan))
    totals, requests = summary["totals"], summary["requests"]
    tokens = totals["visual_tokens"]
    console.print(plain(f"model: {plan.model or '(first model the endpoint serves)'}  family: {plan.family}  "
                        f"endpoint: {masked_url(plan.base_url)}"))
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
