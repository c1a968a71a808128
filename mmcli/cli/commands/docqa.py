"""`mmcli docqa`: questions about PDFs and scanned pages, with page citations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.limits import DEFAULT_MAX_PAGES
from ..batch_options import with_batch_options
from ..document_options import DOCUMENT, MaxPages, PasswordEnv
from ..options import page_list, with_common_options
from ..schema_options import with_schema_options

if TYPE_CHECKING:
    from mmcli.batch.work import BatchFlags
    from mmcli.settings import CommonOptions

HELP = """Ask a vision-language model about PDF documents or scanned pages.

INPUTS are PDF files or page images (paths, http(s) URLs, data URLs, or - for standard input); the last argument is the question. Each page is rendered on this machine straight to the model's pixel grid and sent after a "Page N" label, so answers can cite pages. When the pages do not fit one request (--pages-per-request), they are answered in batches and the partial answers are merged by one more request."""

EPILOG = """Examples:

  mmcli docqa paper.pdf "how many encoder layers are used, and where is it said?"

  mmcli docqa paper.pdf "summarise the method" --pages 1-4,7

  mmcli docqa contract.pdf "list every deadline" --per-page --json

  mmcli docqa scan1.png scan2.png "what is the invoice total?"

  PDF_PASSWORD=... mmcli docqa locked.pdf "who signed?" --password-env PDF_PASSWORD"""


@with_common_options
@with_batch_options()
@with_schema_options()
def docqa(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="INPUT", show_default=False,
        help="PDF files or page images: paths, http(s) URLs, data URLs, or - for standard input.")] = None,
    question: Annotated[str, typer.Argument(metavar="QUESTION", show_default=False, help="The question.")] = ...,
    pages: Annotated[Optional[str], typer.Option(
        "--pages", metavar="LIST", callback=page_list, rich_help_panel=DOCUMENT,
        help="Pages of each PDF to read, 1-based like a PDF viewer: 3, 1-4,7 or 10- (default: all).")] = None,
    dpi: Annotated[Optional[int], typer.Option(
        "--dpi", min=10, max=1200, metavar="DPI", rich_help_panel=DOCUMENT,
        help="Render PDF pages at this resolution (snapped to the model's grid) instead of fitting "
             "them to the pixel budget.")] = None,
    with_text: Annotated[bool, typer.Option(
        "--with-text", rich_help_panel=DOCUMENT,
        help="Also send each page's text layer (pdftotext) beside its image; pages without one get "
             "the image only.")] = False,
    pages_per_request: Annotated[Optional[int], typer.Option(
        "--pages-per-request", min=1, metavar="N", rich_help_panel=DOCUMENT,
        help="Most pages in one request; more are answered in batches and merged. "
             "Default: the profile's (local 4, xinference 2, parasail and openai 8).")] = None,
    per_page: Annotated[bool, typer.Option(
        "--per-page", rich_help_panel=DOCUMENT,
        help="Answer each page separately: one result per page (JSON lines with --json).")] = False,
    password_env: PasswordEnv = None,
    max_pages: MaxPages = DEFAULT_MAX_PAGES,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Ask a vision-language model about PDF documents or scanned pages."""
    from mmcli.core.driver import drive
    from mmcli.core.inputs import check_question
    from ..output.render import Output
    from ..output.show_docqa import DocqaView
    from mmcli.tasks.docqa import DocOptions
    from mmcli.tasks.specs import TASKS

    doc = DocOptions(pages=pages, dpi=dpi, with_text=with_text, pages_per_request=pages_per_request,
                     per_page=per_page, password_env=password_env, max_pages=max_pages)
    inputs = inputs or []
    check_question(inputs, question, 'mmcli docqa FILE.pdf "question"')
    out = Output(json_mode=opts.output.json)
    if batch.each:
        from mmcli.batch.run import run_each

        return run_each("docqa", inputs, question, opts, batch, out, doc)
    drive(TASKS["docqa"], inputs, question, doc, opts, DocqaView(out, TASKS["docqa"]))
