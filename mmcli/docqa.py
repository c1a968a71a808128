"""Questions about documents: PDF pages and scanned pages, in one request, in batches, or page by page.

When the pages do not fit one request they are answered in batches and the partial answers are
merged by one more, text-only request (map-reduce); page citations survive both steps because
every page is sent after a "Page N" label and every prompt asks for "(p. N)".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional

from . import client, pipeline
from .config import CommonOptions, Settings
from .errors import MediaError, MmcliError, UsageError
from .media.pdf import PdfInput, format_pages, open_pdf, page_texts, parse_pages, read_password, render_pages
from .media.resize import PixelBudget
from .messages import data_url, image_part, request_size, shorten_data_urls, text_part
from .models import Family
from .plan import Plan, PlanItem
from .render import Output, Progress

DEFAULT_MAX_PAGES = 50
DEFAULT_PAGES_PER_REQUEST = 4
NOTHING = "Nothing relevant on these pages."

SINGLE_PROMPT = ("{question}\n\nAnswer from the pages above. After each fact, cite the page it comes from "
                 "as (p. N).")
BATCH_PROMPT = ("Question: {question}\n\nThe pages above are pages {pages} of a longer document. Answer the "
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
class Selected:
    """One input and the pages chosen from it (an image is a single page)."""

    checked: pipeline.CheckedInput
    pdf: Optional[PdfInput]
    pages: list[int]


@dataclass
class Page:
    """One page ready to send: what the model cites it as, its content parts and its plan item."""

    number: int
    label: str
    parts: list[dict]
    item: PlanItem
    source: str = ""  # the input file it comes from


@dataclass
class Session:
    """Where requests go and how they are built and shown."""

    settings: Settings
    model: Optional[str]
    family: Family
    opts: CommonOptions
    out: Output
    question: str

    def plan(self, pages: list[Page], prompt: str) -> Plan:
        """The request for these pages (none: a text-only request) and this prompt."""
        parts = [part for page in pages for part in page.parts]
        return pipeline.build_plan(self.settings, self.model, self.family, [p.item for p in pages], parts,
                                   prompt, self.opts)


@dataclass
class BatchAnswer:
    """What the model said about one batch of pages."""

    pages: list[int]
    result: client.ChatResult
    complete: bool = True

    def to_dict(self) -> dict:
        """JSON form."""
        return {"pages": self.pages, "answer": self.result.text, "finish_reason": self.result.finish_reason,
                "usage": self.result.usage, **({} if self.complete else {"complete": False})}


@dataclass
class Jobs:
    """The requests a run makes: page groups, each with its prompt, and whether a merge follows."""

    mode: str  # single | batches | per-page
    groups: list[list[Page]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


def run(inputs: list[str], question: str, doc: DocOptions, opts: CommonOptions, out: Output) -> None:
    """Answer `question` about the pages of `inputs` (PDFs and page images)."""
    pipeline.check_question(inputs, question, 'mmcli docqa FILE.pdf "question"')
    if not inputs:
        raise UsageError("no document given", hint='mmcli docqa FILE.pdf "question"')
    checked = pipeline.check_inputs(inputs, opts, out, allowed=("image", "pdf"))
    selected = select_pages(checked, doc, read_password(doc.password_env))
    settings = pipeline.settings_for(opts)
    model, family = pipeline.resolve_model(settings, opts.output.dry_run, out)
    budget = pipeline.image_budget(family, opts.media)
    with out.spinner(f"rendering {sum(len(s.pages) for s in selected)} page(s)"):
        pages = build_pages(selected, budget, doc, opts, out)
    session = Session(settings, model, family, opts, out, question)
    per_request = doc.pages_per_request or settings.endpoint.profile.pages_per_request or DEFAULT_PAGES_PER_REQUEST
    jobs = plan_jobs(pages, question, per_request, doc.per_page)
    if opts.output.dry_run:
        show_dry_run(session, jobs, pages)
    elif jobs.mode == "per-page":
        answer_per_page(session, jobs)
    elif jobs.mode == "single":
        pipeline.send(session.plan(jobs.groups[0], jobs.prompts[0]), settings, opts, out,
                      extra={"pages": [p.number for p in pages]})
    else:
        answer_in_batches(session, jobs, pages)


def select_pages(checked: list[pipeline.CheckedInput], doc: DocOptions, password: Optional[str]) -> list[Selected]:
    """Open every PDF and choose its pages; all problems are found here, before anything is sent."""
    pdfs = [c for c in checked if c.source.sniffed.kind == "pdf"]
    if doc.pages and not pdfs:
        raise UsageError("--pages needs a PDF", "every input is a single image", where=doc.pages,
                         hint="each image is one page: name only the ones to read")
    selected = []
    for item in checked:
        if item.source.sniffed.kind != "pdf":
            selected.append(Selected(item, None, [1]))
            continue
        if item.source.url is not None:
            raise MediaError("cannot pass a PDF URL through", "its pages are rendered on this machine",
                             where=item.source.label, hint="drop --pass-url; mmcli downloads the PDF itself")
        pdf = open_pdf(item.source, password)
        try:
            pages = parse_pages(doc.pages, pdf.page_count) if doc.pages else list(range(1, pdf.page_count + 1))
        except UsageError as exc:
            exc.where = pdf.label
            raise
        selected.append(Selected(item, pdf, pages))
    total = sum(len(s.pages) for s in selected)
    if not doc.pages and total > doc.max_pages:
        where = selected[0].checked.source.label if len(selected) == 1 else f"{len(selected)} inputs"
        raise UsageError("too many pages", f"{total} pages, over the limit of {doc.max_pages}", where=where,
                         hint=f"choose pages with --pages 1-{doc.max_pages}, or allow them all with "
                              f"--max-pages {total}")
    return selected


def build_pages(selected: list[Selected], budget: PixelBudget, doc: DocOptions, opts: CommonOptions,
                out: Output) -> list[Page]:
    """Render the chosen pages and label them as the model will cite them."""
    single_pdf = len(selected) == 1 and selected[0].pdf is not None
    pages: list[Page] = []
    for entry in selected:
        label = entry.checked.source.label
        if entry.pdf is None:
            item, part = pipeline.plan_image(entry.checked, budget, opts.media)
            item.kind = "page"
            number = len(pages) + 1
            item.details.update({"page": 1, "cited_as": number})
            name = f"Page {number} ({label})"
            pages.append(Page(number, name, [text_part(name), part], item, label))
            continue
        rendered = render_pages(entry.pdf, entry.pages, budget, lossless=opts.media.lossless, dpi=doc.dpi)
        texts = page_texts(entry.pdf, entry.pages) if doc.with_text else {}
        if doc.with_text and not any(texts.values()):
            out.warn(f"{label} has no text layer (a scan?); sending the page images only")
        for page in rendered:
            number = page.page if single_pdf else len(pages) + 1
            name = f"Page {number}" if single_pdf else f"Page {number} ({label}, page {page.page})"
            parts = [text_part(name), image_part(data_url(page.data, page.mime))]
            text = texts.get(page.page, "")
            notes = [f"{page.width_pt:g}x{page.height_pt:g} pt at {page.dpi:.0f} dpi", *page.notes]
            if text:
                parts.append(text_part(f"Text layer of page {number}:\n{text}"))
                notes.append(f"text layer: {len(text):,} characters")
            item = PlanItem(source=f"{label}#page={page.page}", kind="page", mime=page.mime,
                            sent_width=page.width, sent_height=page.height,
                            visual_tokens=budget.tokens(page.height, page.width),
                            bytes=len(page.data), notes=notes,
                            details={"page": page.page, "cited_as": number, "width_pt": page.width_pt,
                                     "height_pt": page.height_pt, "dpi": round(page.dpi, 1)})
            pages.append(Page(number, name, parts, item, label))
            for note in page.notes:  # only --dpi leaves notes: a page capped at the model's maximum
                out.warn(note)
    return pages


def plan_jobs(pages: list[Page], question: str, per_request: int, per_page: bool) -> Jobs:
    """Which pages go in which request, with which prompt."""
    if per_page:
        return Jobs("per-page", [[p] for p in pages],
                    [PAGE_PROMPT.format(question=question, label=p.label) for p in pages])
    if len(pages) <= per_request:
        return Jobs("single", [pages], [SINGLE_PROMPT.format(question=question)])
    groups = [pages[i:i + per_request] for i in range(0, len(pages), per_request)]
    prompts = [BATCH_PROMPT.format(question=question, pages=format_pages([p.number for p in g])) for g in groups]
    return Jobs("batches", groups, prompts)


def merge_prompt(question: str, answers: list[BatchAnswer]) -> str:
    """The text-only request that turns the batch answers into one, keeping citations."""
    useful = [a for a in answers if not a.result.text.strip().lower().startswith(NOTHING.lower()[:-1])]
    partials = "\n\n".join(f"[Pages {format_pages(a.pages)}]\n{a.result.text.strip()}" for a in useful)
    return MERGE_PROMPT.format(question=question, partials=partials or "(no part found anything relevant)")


def answer_in_batches(session: Session, jobs: Jobs, pages: list[Page]) -> None:
    """Map: one request per batch of pages, with progress on stderr. Reduce: one merge request."""
    out, opts, endpoint = session.out, session.opts, session.settings.endpoint
    answers: list[BatchAnswer] = []
    with Progress(out, len(jobs.groups) + 1, "reading pages") as progress:
        for group, prompt in zip(jobs.groups, jobs.prompts):
            numbers = [p.number for p in group]
            progress.begin(f"pages {format_pages(numbers)}")
            try:
                result = client.chat(endpoint, session.plan(group, prompt).request, status=out.status)
            except (MmcliError, KeyboardInterrupt) as exc:
                if isinstance(exc, client.PartialAnswerError):
                    answers.append(BatchAnswer(numbers, exc.partial, complete=False))
                progress.close()
                report_partial(session, answers, exc.message() if isinstance(exc, MmcliError) else "interrupted")
                raise
            if result.finish_reason == "length":
                out.warn(f"the answer for pages {format_pages(numbers)} stopped at the token limit")
            answers.append(BatchAnswer(numbers, result))
            progress.advance()
        progress.begin(f"merging {len(answers)} partial answers")
    plan = session.plan([], merge_prompt(session.question, answers))
    plan.items = [p.item for p in pages]
    extra = {"pages": [p.number for p in pages], "batches": [a.to_dict() for a in answers],
             "batch_usage": total_usage([a.result for a in answers])}
    try:
        pipeline.send(plan, session.settings, opts, out, extra=extra)
    except client.PartialAnswerError as exc:  # the streamed part stays; JSON was already written
        if not opts.output.json:
            report_partial(session, answers, exc.message())
        raise
    except MmcliError as exc:
        report_partial(session, answers, exc.message())
        raise


def report_partial(session: Session, answers: list[BatchAnswer], error: str) -> None:
    """Print what was answered before the run failed with `error`, so nothing already paid for is lost."""
    out = session.out
    answered = [n for a in answers for n in a.pages]
    if out.json_mode:
        out.emit_json({"answer": None, "model": session.model, "pages_answered": answered,
                       "batches": [a.to_dict() for a in answers], "error": error})
        return
    if not answers:
        return
    out.warn(f"stopped after pages {format_pages(answered)}; the answers so far are printed")
    for answer in answers:
        suffix = "" if answer.complete else " (incomplete)"
        out.stdout.write(f"## Pages {format_pages(answer.pages)}{suffix}\n\n{answer.result.text.strip()}\n\n")
    out.stdout.flush()


def answer_per_page(session: Session, jobs: Jobs) -> None:
    """One request per page; one result per page (a JSON line each with --json), printed as it comes."""
    out, opts, endpoint = session.out, session.opts, session.settings.endpoint
    for (page,), prompt in zip(jobs.groups, jobs.prompts):
        plan = session.plan([page], prompt)
        line = {"page": page.number, "source": page.source, "source_page": page.item.details.get("page")}
        if not opts.output.json:
            out.stdout.write(f"## {page.label}\n\n")
            out.stdout.flush()
            pipeline.send(plan, session.settings, opts, out)
            out.stdout.write("\n")
            continue
        try:
            result = client.chat(endpoint, plan.request, status=out.status)
        except MmcliError as exc:
            partial = exc.partial.text if isinstance(exc, client.PartialAnswerError) else None
            emit_line(out, {**line, "answer": partial, "error": exc.message()})
            raise
        emit_line(out, {**line, "answer": result.text, "model": result.model,
                        "finish_reason": result.finish_reason, "usage": result.usage})


def emit_line(out: Output, payload: dict) -> None:
    """One compact JSON object on its own line of stdout (JSON lines)."""
    out.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    out.stdout.flush()


def total_usage(results: list[client.ChatResult]) -> dict:
    """Token counts summed over several requests."""
    total: dict = {}
    for result in results:
        for key, value in result.usage.items():
            total[key] = total.get(key, 0) + value
    return total


def show_dry_run(session: Session, jobs: Jobs, pages: list[Page]) -> None:
    """Every request the run would make, with sizes and visual tokens; nothing is sent."""
    plans = [session.plan(group, prompt) for group, prompt in zip(jobs.groups, jobs.prompts)]
    merge = jobs.mode == "batches"
    tokens = [p.item.visual_tokens for p in pages]
    totals = {"pages": len(pages), "visual_tokens": None if None in tokens else sum(tokens),
              "bytes": sum(p.item.bytes for p in pages), "requests": len(plans) + int(merge),
              "request_bytes": sum(request_size(p.request) for p in plans)}
    summary = {"model": session.model, "family": session.family.name,
               "base_url": session.settings.endpoint.base_url, "mode": jobs.mode, "merge": merge,
               "items": [asdict(p.item) for p in pages],
               "totals": totals,
               "requests": [{"pages": [p.number for p in group], "request": shorten_data_urls(plan.request)}
                            for group, plan in zip(jobs.groups, plans)]}
    if session.out.json_mode:
        session.out.emit_json(summary)
        return
    print_doc_plan(session.out, Plan(session.model, session.family.name, session.settings.endpoint.base_url,
                                     [p.item for p in pages], plans[0].request), summary)


def print_doc_plan(out: Output, plan: Plan, summary: dict) -> None:
    """The dry run as text: the page table, totals, the requests, and the first request in full."""
    from rich.console import Console

    from .render import plan_table

    console = Console(file=out.stdout, highlight=False)
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
