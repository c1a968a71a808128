"""Questions about documents: pages in one request, in batches merged by one more, or page by page.

Every page is sent after a "Page N" label and every prompt asks for "(p. N)", so page citations
survive both the batches and the merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from ..core.job import DocPart, Job, Text
from ..media.document import DEFAULT_MAX_PAGES, Page, Selected, render, select_pages
from ..media.pdf import format_pages, read_password
from ..media.prepare import image_budget
from .common import Context, total_usage

if TYPE_CHECKING:
    from ..core.inputs import CheckedInput
    from ..core.runner import Result

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
                    meta=DocPart([p.number], p.page.source.label, p.page.item.details.get("page")))
            for p in pages])
    if len(pages) <= per_request:
        return DocJobs("single", pages, [ctx.job(_content(pages), SINGLE_PROMPT.format(question=question),
                                                 label="the document", meta=DocPart([p.number for p in pages]))])
    jobs = []
    for i in range(0, len(pages), per_request):
        chunk = pages[i:i + per_request]
        numbers = [p.number for p in chunk]
        named = _page_words(numbers)
        these = f"The page above is {named}" if len(numbers) == 1 else f"The pages above are {named}"
        jobs.append(ctx.job(_content(chunk), BATCH_PROMPT.format(question=question, these=these),
                            label=named, meta=DocPart(numbers)))
    return DocJobs("batches", pages, jobs)


def _page_words(numbers: list[int]) -> str:
    text = format_pages(numbers)
    return f"page {text}" if len(numbers) == 1 else f"pages {text}"


def merge_job(question: str, answers: list["Result"], doc_jobs: DocJobs, ctx: Context) -> Job:
    """The text-only request that turns the batch answers into one, keeping citations."""
    partials = [(a.job.meta.pages, a.text) for a in answers]
    listed = [page.page.item for page in doc_jobs.pages]  # listed in the plan, not sent again
    return merge_job_from(question, partials, doc_jobs.numbers, ctx, listed)


def merge_job_from(question: str, partials: list[tuple[list[int], str]], numbers: list[int], ctx: Context,
                   listed: Optional[list] = None) -> Job:
    """The merge request from (pages, answer) pairs: also what an exported batch's answers are merged by."""
    useful = [(pages, text) for pages, text in partials
              if not text.strip().lower().startswith(NOTHING.lower()[:-1])]
    joined = "\n\n".join(f"[Pages {format_pages(pages)}]\n{text.strip()}" for pages, text in useful)
    prompt = MERGE_PROMPT.format(question=question, partials=joined or "(no part found anything relevant)")
    job = ctx.job([], prompt, label="the merge", meta=DocPart(list(numbers)))
    if listed:
        job.listed = listed
    return job


def batch_dict(result: "Result") -> dict:
    """JSON form of one batch's answer."""
    data = {"pages": result.job.meta.pages, "answer": result.answer, "finish_reason": result.finish_reason,
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
    mode: str = "single"
    planned_visual_tokens: Optional[int] = None
    batch_usage: Optional[dict] = None  # batches mode: what the batches used, before the merge
    complete: bool = True  # False: the run stopped part-way; `batches` holds what was answered
    data: object = None  # with a schema: the (merged) answer as an object; per page, a list of them
    structured: bool = False  # True: `data` is the answer, checked against the schema

    def __str__(self) -> str:
        return self.text


def finish_document(results: list["Result"], mode: str, numbers: list[int], warnings: list[str]) -> DocAnswer:
    """docqa's finish: the requests' results (batches, then the merge when there is one) as one DocAnswer.

    A stopped run gives what was answered: the finished (or partly answered) requests as batches, no merged
    text unless the merge itself was under way."""
    from .common import add_warnings, all_verified

    for result in results:
        add_warnings(warnings, result)
    reading = [r for r in results if r.job.listed is None]  # the requests that carried pages
    merge = results[-1] if mode == "batches" and results and results[-1].job.listed is not None else None
    complete = all(r.ok for r in results) and (mode != "batches" or merge is not None)
    final = merge if merge is not None else (results[-1] if results else None)
    if mode == "per-page":
        text = "\n\n".join(f"## {r.job.label}\n\n{r.text.strip()}" for r in results)
        batches = [{"pages": r.job.meta.pages, "answer": r.answer, "usage": r.usage} for r in results]
    elif mode == "batches":
        text = merge.text if merge is not None else ""
        batches = [batch_dict(r) for r in reading if r.ok or r.text]
    else:
        text, batches = (final.text if final is not None else ""), []
    tokens = [r.plan.visual_tokens for r in reading]
    answer = DocAnswer(text, numbers, batches, total_usage([r.usage for r in results]),
                       final.finish_reason if final else None, final.plan if final else None,
                       all_verified(reading) if complete else None,
                       (final.model or final.job.model) if final else None, warnings, mode,
                       None if None in tokens or not complete else sum(tokens), complete=complete)
    if mode == "batches":
        answer.batch_usage = batch_usage(reading)
    if complete and results and all(r.structured for r in results):
        answer.structured = True
        answer.data = [r.value for r in results] if mode == "per-page" else final.value
    return answer


def document_fields(doc: DocAnswer) -> dict:
    """The one JSON shape of a docqa answer: --json, a results line, a collected line."""
    text = doc.text if doc.complete or doc.text else None
    data = {"answer": doc.data if doc.structured else text, "pages": doc.pages, "mode": doc.mode,
            "model": doc.model, "finish_reason": doc.finish_reason, "usage": doc.usage,
            "planned_visual_tokens": doc.planned_visual_tokens, "verified": doc.verified}
    if doc.batches:
        data["batches"] = doc.batches
    if doc.batch_usage is not None:
        data["batch_usage"] = doc.batch_usage
    if doc.plan is not None:
        data["plan"] = doc.plan.summary()
    if not doc.complete:
        data["pages_answered"] = [n for b in doc.batches for n in b["pages"]]
    if doc.warnings:
        data["warnings"] = list(doc.warnings)
    return data
