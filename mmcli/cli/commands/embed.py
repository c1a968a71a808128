"""`mmcli embed`: vectors for images, PDF pages and texts through an embeddings endpoint; a local index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.limits import DEFAULT_MAX_PAGES
from ..document_options import DOCUMENT, MaxPages, PasswordEnv
from ..options import EMBEDDING_PARAMETERS, ONE_SERVER, page_list, with_options

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

EMBED = "Embedding"

HELP = """Turn images, PDF pages and texts into embedding vectors.

INPUTS are images, PDFs or folders of them (paths, http(s) URLs, data URLs, or - for standard input); --text adds texts. Each image, PDF page and text becomes one conversation sent to POST /v1/embeddings (vLLM's chat form, which takes images); several go in one request, up to --batch-size. Images are resized to the model's pixel grid first, as everywhere in mmcli. The server must run the model as a pooling model: mmcli serve MODEL --embed (vLLM --runner pooling).

Vectors are written as JSON lines (source, page, dims, embedding, usage), or with --format npy as a float32 matrix plus a JSON list of its rows. With --index DIR they are added to a local index for mmcli search; files already in it with the same contents are skipped."""

EPILOG = """Examples:

  mmcli embed photo.jpg --text "a red car" > vectors.jsonl

  mmcli embed scans/ paper.pdf --pages 1-3 --format npy -o vecs.npy

  mmcli embed photos/ --index photos.idx && mmcli search "a red car" --index photos.idx

  mmcli embed page.png --text "invoice total" --preset dse-qwen2 --dry-run"""


@with_options(*EMBEDDING_PARAMETERS, helps={**ONE_SERVER,
    "json_output": "With --dry-run, print the preset and the requests as one JSON object (the vectors "
                   "themselves are always JSON lines or --format npy)."})
def embed(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        metavar="INPUT", show_default=False,
        help="Images, PDFs or folders of them: paths, http(s) URLs, data URLs, or - for standard input.")] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", metavar="TEXT", rich_help_panel=EMBED, help="A text to embed (repeatable).")] = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", metavar="vlm2vec|dse-qwen2|gme|plain", rich_help_panel=EMBED,
        help="The model's conventions: instruction text, text queries, normalisation. "
             "[default: the index's, else judged from the model id, else plain]")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=256, metavar="N", rich_help_panel=EMBED,
        help="Most conversations in one request.")] = 8,
    fmt: Annotated[str, typer.Option(
        "--format", metavar="jsonl|npy", rich_help_panel=EMBED,
        help="jsonl: one JSON object per vector; npy: a float32 matrix (-o FILE.npy) and FILE.json listing its rows.")] = "jsonl",
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE", rich_help_panel=EMBED,
        help="Write the vectors to FILE (atomically) instead of standard output.")] = None,
    force: Annotated[bool, typer.Option("--force", rich_help_panel=EMBED, help="Overwrite existing output files.")] = False,
    index: Annotated[Optional[Path], typer.Option(
        "--index", metavar="DIR", rich_help_panel=EMBED,
        help="Add the vectors to the index in DIR (created if missing); unchanged files are skipped.")] = None,
    pages: Annotated[Optional[str], typer.Option(
        "--pages", metavar="LIST", callback=page_list, rich_help_panel=DOCUMENT,
        help="Pages of each PDF, 1-based: 3, 1-4,7 or 10- (default: all).")] = None,
    password_env: PasswordEnv = None,
    max_pages: MaxPages = DEFAULT_MAX_PAGES,
    opts: "CommonOptions" = None,
) -> None:
    """Turn images, PDF pages and texts into embedding vectors."""
    from ..output.show_embed import EmbedArgs, run_embed

    run_embed(EmbedArgs(inputs=list(inputs or []), texts=list(text or []), preset=preset, batch_size=batch_size,
                        fmt=fmt, output=output, force=force, index=index, pages=pages, password_env=password_env,
                        max_pages=max_pages), opts)
