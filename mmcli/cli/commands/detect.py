"""`mmcli detect`: boxes (or points) around what you name, in the original image's pixels."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.limits import DEFAULT_MAX_PAGES
from ..batch_options import with_batch_options
from ..options import page_list, with_common_options

if TYPE_CHECKING:
    from mmcli.batch.work import BatchFlags
    from mmcli.settings import CommonOptions

DETECTION = "Detection"

HELP = """Find things in images: boxes (or points) in the original image's pixels.

INPUTS are images or PDFs: paths, http(s) URLs, data URLs, or - for standard input; the last argument says what to find. Each image (and each PDF page) is sent on its own, resized to the model's grid, with the grounding prompt its model family was trained on; the answer is parsed tolerantly and mapped back exactly to the original image. Shows a table on a terminal, tab-separated lines (input, label, x1, y1, x2, y2) in a pipe, or JSON with --json."""

EPILOG = """Examples:

  mmcli detect photo.jpg "every dog"

  mmcli detect photo.jpg "every dog" --draw            # writes photo.boxes.png beside photo.jpg

  mmcli detect page.pdf "the abstract" --draw         # page.p1.boxes.png, ... for pages with boxes

  mmcli detect shelf.jpg "price tags" --draw -o out/ --format coco

  mmcli detect photo.jpg "the cups" --points --json"""


class DocumentFormat(str, Enum):
    """Machine-readable result formats."""

    json = "json"
    coco = "coco"


class CoordinateSpace(str, Enum):
    """Coordinate spaces a model may answer in."""

    abs = "abs"
    norm1000 = "norm1000"
    norm1 = "norm1"


@with_common_options
@with_batch_options(results_file=False)
def detect(
    inputs: Annotated[list[str], typer.Argument(
        metavar="INPUT", show_default=False,
        help="Images or PDFs: paths, http(s) URLs, data URLs, or - for standard input.")],
    target: Annotated[str, typer.Argument(metavar="TARGET", show_default=False,
                                          help='What to find, e.g. "every dog".')],
    draw: Annotated[bool, typer.Option(
        "--draw", rich_help_panel=DETECTION,
        help="Write an annotated copy of each image (PNG): NAME.boxes.png beside it, or in -o DIR.")] = False,
    output_dir: Annotated[Optional[Path], typer.Option(
        "--output-dir", "-o", metavar="DIR", rich_help_panel=DETECTION,
        help="Directory for every file written (created if missing); default: beside each input.")] = None,
    format: Annotated[Optional[DocumentFormat], typer.Option(
        "--format", metavar="json|coco", rich_help_panel=DETECTION,
        help="Results as json or coco: printed, or saved as DIR/detections.json or DIR/coco.json with -o.")] = None,
    points: Annotated[bool, typer.Option(
        "--points", rich_help_panel=DETECTION, help="Ask for a point on each thing instead of a box.")] = False,
    coords: Annotated[Optional[CoordinateSpace], typer.Option(
        "--coords", metavar="abs|norm1000|norm1", rich_help_panel=DETECTION,
        help="Read the model's numbers as pixels of the sent image (abs), 0..1000 (norm1000) or 0..1 (norm1). "
             "Default: the family's own (Qwen2.5-VL abs, others norm1000).")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", rich_help_panel=DETECTION,
        help="Exit 7 when an answer has no readable boxes, was cut off, or had unreadable items.")] = False,
    crop: Annotated[bool, typer.Option(
        "--crop", rich_help_panel=DETECTION, help="Save each box as its own PNG: NAME.crop-01-LABEL.png.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", rich_help_panel=DETECTION, help="Overwrite output files that already exist (never an input).")] = False,
    pages: Annotated[Optional[str], typer.Option(
        "--pages", metavar="LIST", callback=page_list, rich_help_panel=DETECTION,
        help="PDF pages to search, e.g. 1-3,7 (default: all, up to --max-pages; one request per page).")] = None,
    max_pages: Annotated[int, typer.Option(
        "--max-pages", min=1, metavar="N", rich_help_panel=DETECTION,
        help="Refuse inputs with more pages than this (image inputs count one each) unless --pages picks "
             "them.")] = DEFAULT_MAX_PAGES,
    password_env: Annotated[Optional[str], typer.Option(
        "--password-env", metavar="NAME", rich_help_panel=DETECTION,
        help="Read the password of encrypted PDFs from environment variable NAME.")] = None,
    guided: Annotated[Optional[bool], typer.Option(
        "--guided/--no-guided", rich_help_panel=DETECTION, show_default=False,
        help="Hold the answer to the family's own box form, bounded by its coordinate range (a JSON schema; "
             "for Qwen2-VL's box tokens a regular expression, which only vLLM takes), so every answer parses "
             "and every box lies inside the image. [default: on for Qwen2.5-VL and Qwen3-VL, and for "
             "Qwen2-VL on vLLM, unless the profile says structured_output = \"none\"]")] = None,
    opts: "CommonOptions" = None,
    batch: "BatchFlags" = None,
) -> None:
    """Find things in images: boxes (or points) in the original image's pixels."""
    from ..output.render import Output
    from ..output.show_detections import run_detect
    from mmcli.tasks.detect.jobs import DetectOptions

    options = DetectOptions(
        target=target, draw=draw, output_dir=output_dir, format=format.value if format else None,
        points=points, coords=coords.value if coords else None, strict=strict, crop=crop, force=force,
        pages=pages, password_env=password_env, max_pages=max_pages, guided=guided)
    if batch.each:
        from mmcli.batch.detect_each import detect_each
        return detect_each(inputs, opts, batch, options, Output(json_mode=opts.output.json))
    run_detect(inputs, opts, options)
