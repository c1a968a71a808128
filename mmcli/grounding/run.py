"""`mmcli detect` end to end: check inputs and outputs, ask once per image, parse, map, draw, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import MmcliError, OutputUnparseable, UsageError
from .outputs import DOCUMENT_NAMES, OutputNames, OutputPlan, check_plan, write
from .prompts import default_space, grounding_prompt

if TYPE_CHECKING:
    from ..client import ChatResult
    from ..config import CommonOptions, Settings
    from .inputs import Job
    from ..plan import Plan
    from ..render import Output
    from .report import InputResult

RAW_PREVIEW = 300


@dataclass(frozen=True)
class DetectOptions:
    """detect's own options (the shared ones come as CommonOptions)."""

    target: str
    draw: bool = False
    output_dir: Optional[Path] = None
    format: Optional[str] = None  # json | coco
    points: bool = False
    coords: Optional[str] = None  # abs | norm1000 | norm1
    strict: bool = False
    crop: bool = False
    force: bool = False
    pages: Optional[str] = None
    password_env: Optional[str] = None


def run_detect(inputs: list[str], opts: "CommonOptions", detect: DetectOptions) -> None:
    """Ground `detect.target` in every input; show, draw and save the results."""
    from .. import pipeline
    from ..render import Output
    from ..media.pdf import read_password
    from .inputs import build_jobs, plan_job, select

    out = Output(json_mode=opts.output.json)
    if opts.media.pass_url:
        raise UsageError("detect cannot use --pass-url", "boxes are mapped and drawn on pixels mmcli has read",
                         hint="leave out --pass-url; mmcli downloads and resizes the image itself")
    checked = pipeline.check_inputs(inputs, opts, out, allowed=("image", "pdf"))
    entries = select(checked, detect.pages, read_password(detect.password_env))
    outputs = _output_plan([n for e in entries for n in e.names(detect.output_dir)], checked, detect)
    if not opts.output.dry_run:
        check_plan(outputs, draw=detect.draw, crop=detect.crop)
    settings = pipeline.settings_for(opts)
    model, family = pipeline.resolve_model(settings, opts.output.dry_run, out)
    budget = pipeline.image_budget(family, opts.media)
    space = default_space(family.box_convention, detect.coords)
    jobs = build_jobs(entries, budget, opts.media, detect.output_dir, out)
    plans = []
    for job in jobs:
        item, part = plan_job(job, budget, opts.media)
        prompt = grounding_prompt(family.name, detect.target, points=detect.points, space=space,
                                  sent_size=(item.sent_width, item.sent_height))
        item.details.update(coordinate_space=space, prompt=prompt)
        if detect.draw:
            item.details["annotated"] = str(job.names.annotated())
        plans.append(pipeline.build_plan(settings, model, family, [item], [part], prompt, opts))
    if opts.output.dry_run:
        _show_plans(plans, out)
        return
    results = _ask_all(jobs, plans, settings, space, detect, outputs, out)
    _report(results, model, family.name, detect, outputs, out)
    _enforce_strict(results, detect)


def _output_plan(names: list[OutputNames], checked: list, detect: DetectOptions) -> OutputPlan:
    document = None
    if detect.format and detect.output_dir is not None:
        document = detect.output_dir / DOCUMENT_NAMES[detect.format]
    wanted = detect.draw or detect.crop
    inputs = [c.source.path for c in checked if c.source.path is not None]
    return OutputPlan(names=names if wanted else [], document=document, inputs=inputs, force=detect.force)


def _show_plans(plans: list["Plan"], out: "Output") -> None:
    if out.json_mode:
        out.emit_json({"plans": [plan.to_dict() for plan in plans]})
        return
    for plan in plans:
        out.show_plan(plan)


def _ask_all(jobs: list[Job], plans: list["Plan"], settings: "Settings", space: str, detect: DetectOptions,
             outputs: OutputPlan, out: "Output") -> list["InputResult"]:
    from .. import client

    results: list["InputResult"] = []
    try:
        for number, (job, plan) in enumerate(zip(jobs, plans), start=1):
            if len(jobs) > 1:
                out.status(f"[{number}/{len(jobs)}] {job.display_name}")
            failure = None
            try:
                with out.spinner(f"waiting for the model ({job.display_name})"):
                    answer = client.chat(settings.endpoint, plan.request, status=out.status)
            except client.PartialAnswerError as exc:
                answer, failure = exc.partial, exc
            results.append(_finish(job, plan, answer, space, detect, outputs, out))
            if failure is not None:
                results[-1].error = failure.message()
                raise failure
    except MmcliError as exc:
        # Nothing is lost: what was found before the failure is shown (and saved) before exiting.
        if results:
            _report(results, plans[0].model, plans[0].family, detect, outputs, out, error=exc.message())
        raise
    return results


def _finish(job: Job, plan: "Plan", answer: "ChatResult", space: str, detect: DetectOptions,
            outputs: OutputPlan, out: "Output") -> "InputResult":
    from .parse import parse_answer
    from .report import InputResult
    from .result import ground

    item = plan.items[0]
    sent = (item.sent_width, item.sent_height)
    original = (job.image.width, job.image.height)
    parsed = parse_answer(answer.text)
    grounded = ground(parsed, space, sent, original)
    for warning in grounded.warnings:
        out.warn(f"{job.display_name}: {warning}")
    if answer.finish_reason == "length":
        out.warn(f"{job.display_name}: the answer stopped at the token limit; raise --max-tokens for longer answers")
    result = InputResult(job.label, job.page, original, sent, grounded, parsed, answer.text,
                         answer.finish_reason, answer.usage, page_size_pt=job.page_size_pt)
    if not grounded.detections:
        out.status(f"no detections in {job.display_name}; the model answered: {_preview(answer.text)}")
    elif detect.draw or detect.crop:
        result.files = _write_images(job, grounded.detections, detect, outputs, out)
    return result


def _preview(text: str) -> str:
    from .labels import clean_label

    return repr(clean_label(text, RAW_PREVIEW)) if text.strip() else "(nothing)"


def _write_images(job: Job, detections, detect: DetectOptions, outputs: OutputPlan, out: "Output") -> dict:
    from ..media.image import oriented_bgr
    from .draw import annotate, crop, png_bytes, to_rgb_image

    image = to_rgb_image(oriented_bgr(job.image))
    files: dict = {}
    if detect.draw:
        path = write(job.names.annotated(), png_bytes(annotate(image, detections)), outputs)
        files["annotated"] = str(path)
        out.status(f"wrote {path}")
    if detect.crop:
        boxes = [d for d in detections if d.kind == "box"]
        crops = [write(job.names.crop(n, d.label), png_bytes(crop(image, d)), outputs)
                 for n, d in enumerate(boxes, start=1)]
        files["crops"] = [str(p) for p in crops]
        if crops:
            out.status(f"wrote {len(crops)} crop(s): {crops[0]}" + (" ..." if len(crops) > 1 else ""))
    return files


def _report(results: list["InputResult"], model: Optional[str], family: str, detect: DetectOptions,
            outputs: OutputPlan, out: "Output", error: Optional[str] = None) -> None:
    import json

    from .report import coco, document, print_table, tsv_lines

    docs = {"json": lambda: document(results, model, family, detect.target, error),
            "coco": lambda: coco(results, detect.target)}
    if outputs.document is not None and detect.format:
        data = json.dumps(docs[detect.format](), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        out.status(f"wrote {write(outputs.document, data, outputs)}")
    if detect.format and detect.output_dir is None:
        out.emit_json(docs[detect.format]())
    elif out.json_mode:
        out.emit_json(docs["json"]())
    elif any(r.grounded.detections for r in results):
        if out.stdout.isatty():
            print_table(results, out.stdout)
        else:
            for line in tsv_lines(results):
                out.stdout.write(line + "\n")
            out.stdout.flush()


def _unreadable(result: "InputResult") -> Optional[str]:
    parsed = result.parsed
    if parsed.form == "none":
        return "no boxes or points in the answer" if result.raw.strip() else "the answer is empty"
    if parsed.truncated:
        return "the answer was cut off"
    if parsed.skipped:
        return f"{parsed.skipped} item(s) could not be read"
    return None


def _enforce_strict(results: list["InputResult"], detect: DetectOptions) -> None:
    if not detect.strict:
        return
    failed = [(r, why) for r in results if (why := _unreadable(r))]
    if not failed:
        return
    first, why = failed[0]
    where = first.display_name + (f" and {len(failed) - 1} more" if len(failed) > 1 else "")
    raise OutputUnparseable("model output could not be parsed", why, where=where,
                            hint="the raw answer is in the --json output; check --family and --coords, "
                                 "or leave out --strict to keep what could be read")
