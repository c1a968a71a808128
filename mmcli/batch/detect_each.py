"""detect --each: one job per input, results.jsonl in -o DIR, and one COCO dataset for the whole run."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..events import Display
    from ..settings import CommonOptions
    from ..tasks.detect.jobs import DetectOptions
    from .work import BatchFlags

RESULTS_NAME = "results.jsonl"


def detect_each(inputs: list[str], opts: "CommonOptions", flags: "BatchFlags", detect: "DetectOptions",
                out: "Display") -> None:
    """Every input its own detect job; with -o DIR the lines go to DIR/results.jsonl (and --format coco
    writes DIR/coco.json from every line, old and new)."""
    from dataclasses import replace

    from ..files import check_output_dir, make_output_dir
    from .run import run_each
    from .work import ALLOWED, expand

    if detect.draw or detect.crop:
        raise UsageError("--each does not draw or crop yet", hint="leave out --draw/--crop; the boxes are in "
                         "the results lines, in the original image's pixels")
    if detect.format and detect.output_dir is None:
        raise UsageError("--each with --format needs -o DIR", hint="the dataset is written to DIR/coco.json")
    if detect.output_dir is not None:
        check_output_dir(detect.output_dir)
        make_output_dir(detect.output_dir)  # the results file goes in it from the first job on
        flags = replace(flags, output=detect.output_dir / RESULTS_NAME)
    sources = expand(inputs, flags.recursive, ALLOWED["detect"]) if detect.format else []
    try:
        run_each("detect", inputs, detect.target, opts, flags, out, detect)
    finally:
        if detect.format and flags.output is not None:
            write_document(flags.output, detect, sources)


def write_document(results_path, detect: "DetectOptions", sources: list[str]) -> None:
    """COCO (or the JSON document) for this run's inputs and target, from the results file's lines (old
    and new), written atomically; lines of other runs in the same folder are left out."""
    from ..files import write_atomic
    from .cocofile import coco_from_lines, json_from_lines
    from .results import latest, read_lines

    from ..urls import masked_url

    wanted = {masked_url(spec) for spec in sources}  # as the lines hold them: a URL without its password
    by_input = {}  # the last line of each input: one image, one entry in the dataset
    for record in latest(read_lines(results_path)[0]).values():
        if (record.get("command") == "detect" and record.get("prompt") == detect.target
                and set(record.get("sources") or ()) <= wanted):
            by_input[tuple(record.get("sources") or ())] = record
    records = list(by_input.values())
    if detect.format == "coco":
        data, name = coco_from_lines(records, detect.target), "coco.json"
    else:
        data, name = json_from_lines(records, detect.target), "detections.json"
    text = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    write_atomic(results_path.parent / name, text, force=True)
