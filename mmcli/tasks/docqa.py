"""Questions about documents: pages in one request, in batches merged by one more, or page by page.

Every page is sent after a "Page N" label and every prompt asks for "(p. N)", so page citations
survive both the batches and the merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from ..job import Job, Text
from ..media.document import DEFAULT_MAX_PAGES, Page, Selected, render, select_pages
from ..media.pdf import format_pages, read_password
from ..media.prepare import image_budget
from .common import Context, total_usage

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..events import Events
    from ..inputs import CheckedInput
    from ..runner import Result, Runner

DEFAULT_PAGES_PER_REQUEST = 4
NOTHING = "Nothing relevant on these pages."

SINGLE_PROMPT = ("{question}\n\nAnswer from the pages above. After each fact, cite the page it comes from "
                 "as (p. N).")
BATCH_PROMPT = ("Question: {question}\n\n{these} of a longer document. Answer the "
                "question from these pages only and cite the page of each fact as (p. N). If these pages "
                "say nothing relevant, reply only: " + NOTHING)
MERGE_PROMPT = ("Question: {question}\n\nThe document was read in parts. This is what each part says, with "
                "page citations:\n\n{partials}\n\nWrite one complete answer to the question from these "
                "partial answers. Keep the page citations (p. N) next to the facts they support, and leave "
                "out parts that found nothing relevant.")
PAGE_PROMPT = ("{question}\n\nAnswer from this page ({label}) only. If it says nothing relevant, reply only: "
               "Nothing relevant on this page.")


@dataclass(frozen=True)
class DocOptions:
    """docqa's own options."""

    pages: Optional[str] = None
    dpi: Optional[int] = None
    with_text: bool = False
    pages_per_request: Optional[int] = None
    per_page: bool = False
    password_env: Optional[str] = None
    max_pages: int = DEFAULT_MAX_PAGES


@dataclass
class DocPage:
    """A page as the model cites it: its number, its label and its prepared page."""

    number: int
    label: str
    page: Page


@dataclass
class DocJobs:
    """The requests a run makes, and whether a merge follows them."""

    mode: str  # single | batches | per-page
    pages: list[DocPage]
    jobs: list[Job] = field(default_factory=list)

    @property
    def numbers(self) -> list[int]:
        """Every page number, as cited."""
        return [p.number for p in self.pages]


def choose_pages(checked: list["CheckedInput"], doc: DocOptions) -> list[Selected]:
    """Open every PDF and choose its pages; every problem is found here, before anything is sent."""
    if not checked:
        raise UsageError("no document given", hint='mmcli docqa FILE.pdf "question"')
    return select_pages(checked, doc.pages, read_password(doc.password_env), doc.max_pages)


def prepare_docqa(inputs: list, question: str, doc: DocOptions, opts: "CommonOptions",
                  events: "Events") -> tuple["Runner", DocJobs, Context]:
    """Settings, inputs, pages chosen, endpoint, then the requests: what `mmcli docqa` and the API share."""
    from ..flow import connect, open_inputs

    opened = open_inputs(inputs, opts, events, allowed=("image", "pdf"))
    selected = choose_pages(opened.checked, doc)
    started = connect(opened, opts, events)
    return started.runner, doc_jobs(selected, question, doc, started.ctx), started.ctx


def doc_jobs(selected: list[Selected], question: str, doc: DocOptions, ctx: Context) -> DocJobs:
    """Render and label the chosen pages, then group them into requests."""
    budget = image_budget(ctx.target.family, ctx.media)
    with ctx.events.spinner(f"rendering {sum(len(s.pages) for s in selected)} page(s)"):
        rendered = render(selected, budget, lossless=ctx.media.lossless, dpi=doc.dpi, with_text=doc.with_text,
                          warn=ctx.events.warn)
    pages = label_pages(rendered, single_pdf=len(selected) == 1 and selected[0].pdf is not None)
    profile = ctx.target.settings.endpoint.profile
    per_request = doc.pages_per_request or profile.pages_per_request or DEFAULT_PAGES_PER_REQUEST
    return group(pages, question, per_request, doc.per_page, ctx)


def label_pages(rendered: list[Page], single_pdf: bool) -> list[DocPage]:
    """Number the pages as the model will cite them; one PDF keeps its own page numbers."""
    pages = []
    for n, page in enumerate(rendered, start=1):
        label = page.source.label
        if page.page is None:
            number, name = n, f"Page {n} ({label})"
            page.item.kind = "page"
            page.item.original_width = page.item.original_width
            page.item.details.update({"page": 1, "cited_as": number})
        else:
            number = page.page if single_pdf else n
            name = f"Page {number}" if single_pdf else f"Page {number} ({label}, page {page.page})"
            page.item.source = f"{label}#page={page.page}"
            page.item.original_width = page.item.original_height = None
            page.item.details["cited_as"] = number
            if page.text:
                page.item.notes.append(f"text layer: {len(page.text):,} characters")
        pages.append(DocPage(number, name, page))
    return pages


def _content(pages: list[DocPage]) -> list:
    content: list = []
    for p in pages:
        content += [Text(p.label), p.page.item]
        if p.page.text:
            content.append(Text(f"Text layer of page {p.number}:\n{p.page.text}"))
    return content


def group(pages: list[DocPage], question: str, per_request: int, per_page: bool, ctx: Context) -> DocJobs:
    """Which pages go in which request, with which prompt."""
    if per_page:
        return DocJobs("per-page", pages, [
            ctx.job(_content([p]), PAGE_PROMPT.format(question=question, label=p.label), label=p.label,
                    pages=[p.number], source=p.page.source.label, source_page=p.page.item.details.get("page"))
            for p in pages])
    if len(pages) <= per_request:
        return DocJobs("single", pages, [ctx.job(_content(pages), SINGLE_PROMPT.format(question=question),
                                                 label="the document", pages=[p.number for p in pages])])
    jobs = []
    for i in range(0, len(pages), per_request):
        chunk = pages[i:i + per_request]
        numbers = [p.number for p in chunk]
        named = _page_words(numbers)
        these = f"The page above is {named}" if len(numbers) == 1 else f"The pages above are {named}"
        jobs.append(ctx.job(_content(chunk), BATCH_PROMPT.format(question=question, these=these),
                            label=named, pages=numbers))
    return DocJobs("batches", pages, jobs)


def _page_words(numbers: list[int]) -> str:
    text = format_pages(numbers)
    return f"page {text}" if len(numbers) == 1 else f"pages {text}"


def merge_job(question: str, answers: list["Result"], doc_jobs: DocJobs, ctx: Context) -> Job:
    """The text-only request that turns the batch answers into one, keeping citations."""
    partials = [(a.job.context["pages"], a.text) for a in answers]
    listed = [page.page.item for page in doc_jobs.pages]  # listed in the plan, not sent again
    return merge_job_from(question, partials, doc_jobs.numbers, ctx, listed)


def merge_job_from(question: str, partials: list[tuple[list[int], str]], numbers: list[int], ctx: Context,
                   listed: Optional[list] = None) -> Job:
    """The merge request from (pages, answer) pairs: also what an exported batch's answers are merged by."""
    useful = [(pages, text) for pages, text in partials
              if not text.strip().lower().startswith(NOTHING.lower()[:-1])]
    joined = "\n\n".join(f"[Pages {format_pages(pages)}]\n{text.strip()}" for pages, text in useful)
    prompt = MERGE_PROMPT.format(question=question, partials=joined or "(no part found anything relevant)")
    job = ctx.job([], prompt, label="the merge", pages=list(numbers))
    if listed:
        job.listed = listed
    return job


def batch_dict(result: "Result") -> dict:
    """JSON form of one batch's answer."""
    data = {"pages": result.job.context["pages"], "answer": result.answer, "finish_reason": result.finish_reason,
            "usage": result.usage}
    if not result.ok:
        data["complete"] = False
    return data


def batch_usage(results: list["Result"]) -> dict:
    """Tokens used by the batches, summed."""
    return total_usage([r.usage for r in results])


@dataclass
class DocAnswer:
    """docqa's answer: the text, the pages read, each batch's answer, and the usage of every request."""

    text: str
    pages: list[int]
    batches: list[dict]
    usage: dict
    finish_reason: Optional[str] = None
    plan: Optional[object] = field(default=None, repr=False)
    verified: Optional[bool] = None
    model: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    data: object = None  # with schema=: the (merged) answer as an object; per page, one per page

    def __str__(self) -> str:
        return self.text


def answer_document(runner: "Runner", jobs: DocJobs, question: str, ctx: Context) -> DocAnswer:
    """Run every request (batches, then the merge) without showing anything; for the Python API."""
    from .common import result_warnings

    results = runner.run_all(jobs.jobs)
    if jobs.mode == "batches":
        final = runner.run(merge_job(question, results, jobs, ctx))
        batches = [batch_dict(r) for r in results]
    else:
        final, batches = results[-1], []
    if jobs.mode == "per-page":
        text = "\n\n".join(f"## {r.job.label}\n\n{r.text.strip()}" for r in results)
        batches = [{"pages": r.job.context["pages"], "answer": r.answer, "usage": r.usage} for r in results]
    else:
        text = final.text
    warnings = ctx.events.warnings
    for result in runner.results:
        warnings += [w for w in result_warnings(result) if w not in warnings]
    data = [r.value for r in results] if jobs.mode == "per-page" else final.value
    return DocAnswer(text, jobs.numbers, batches, total_usage([r.usage for r in runner.results]),
                     final.finish_reason, final.plan, final.verified, final.model or final.job.model, warnings,
                     data if ctx.generation.schema is not None else None)


def partial_document(results: list["Result"], jobs: DocJobs) -> DocAnswer:
    """What a stopped run had answered: the finished (or partial) requests as batches, no merged text."""
    answered = [r for r in results if r.ok or r.text]
    return DocAnswer("", jobs.numbers, [batch_dict(r) for r in answered], total_usage([r.usage for r in results]))
