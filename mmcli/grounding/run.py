"""How the CLI shows detect: boxes as a table, TSV lines or JSON; annotated images and crops written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..errors import MmcliError
from ..runner import RunStopped
from .outputs import OutputPlan, Writer, check_plan

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..job import Job
    from ..render import Output
    from ..runner import Result, Runner
    from ..tasks.detect import DetectOptions
    from .report import InputResult

RAW_PREVIEW = 300


def run_detect(inputs: list[str], opts: "CommonOptions", detect: "DetectOptions") -> None:
    """Ground `detect.target` in every input; show, draw and save the results."""
    from ..render import Output
    from ..tasks.detect import check_strict, output_plan, prepare_detect

    out = Output(json_mode=opts.output.json)
    planned: list[OutputPlan] = []

    def check_outputs(selected) -> None:  # before any server is started: no clobbered file after a long wait
        planned.append(output_plan(selected, detect))
        if not opts.output.dry_run:
            check_plan(planned[0], draw=detect.draw, crop=detect.crop)

    runner, jobs = prepare_detect(inputs, detect, opts, out, before_connect=check_outputs)
    if opts.output.dry_run:
        _show_plans([runner.plan(job) for job in jobs], out)
        return
    writer = Writer(planned[0], out)
    results = _ask_all(runner, jobs, detect, writer, out)
    _report(results, runner, detect, writer, out)
    if detect.strict:
        check_strict(results)
    writer.raise_if_failed()  # after the results are shown: they were paid for


def _show_plans(plans: list, out: "Output") -> None:
    if out.json_mode:
        out.emit_json({"plans": [plan.to_dict() for plan in plans]})
        return
    for plan in plans:
        out.show_plan(plan)


def _ask_all(runner: "Runner", jobs: list["Job"], detect: "DetectOptions", writer: Writer,
             out: "Output") -> list["InputResult"]:
    results: list["InputResult"] = []

    def before(job: "Job") -> None:
        if len(jobs) > 1:
            out.status(f"[{len(results) + 1}/{len(jobs)}] {job.label}")

    def after(result: "Result") -> None:
        results.append(_finish(result, detect, writer, out))

    try:
        with out.spinner("waiting for the model"):
            runner.run_all(jobs, before=before, after=after)
    except RunStopped as stopped:
        # Nothing is lost: what was found before the failure is shown (and saved) before exiting.
        last = stopped.results[-1]
        if last.text:  # a partial answer may still hold boxes
            results.append(_finish(last, detect, writer, out))
        if results:
            _report(results, runner, detect, writer, out, error=_reason(stopped.cause))
        raise stopped.cause from None
    return results


def _reason(cause: BaseException) -> str:
    return cause.message() if isinstance(cause, MmcliError) else "interrupted"


def _finish(result: "Result", detect: "DetectOptions", writer: Writer, out: "Output") -> "InputResult":
    from ..present import check_result
    from ..tasks.detect import ground_result

    job = result.job
    found = ground_result(result)
    for warning in found.grounded.warnings:
        out.warn(f"{job.label}: {warning}")
    check_result(result, out)
    if not found.grounded.detections:
        out.status(f"no detections in {job.label}; the model answered: {_preview(result.text)}")
    if detect.draw or detect.crop:
        found.files = _write_images(job, found.grounded.detections, detect, writer, out)
    return found


def _preview(text: str) -> str:
    from .labels import clean_label

    return repr(clean_label(text, RAW_PREVIEW)) if text.strip() else "(nothing)"


def _write_images(job: "Job", detections, detect: "DetectOptions", writer: Writer, out: "Output") -> dict:
    names = job.context["names"]
    files: dict = {}
    written: list = []
    failures_before = len(writer.failed)
    if detections:
        from ..media.image import oriented_bgr
        from .draw import annotate, crop, png_bytes, to_rgb_image

        image = to_rgb_image(oriented_bgr(job.context["original"]))
        if detect.draw and (path := writer.write(names.annotated(), png_bytes(annotate(image, detections)))):
            files["annotated"] = str(path)
            written.append(path)
            out.status(f"wrote {path}")
        if detect.crop:
            boxes = [d for d in detections if d.kind == "box"]
            crops = [writer.write(names.crop(n, d.label), png_bytes(crop(image, d)))
                     for n, d in enumerate(boxes, start=1)]
            crops = [path for path in crops if path is not None]
            files["crops"] = [str(p) for p in crops]
            written += crops
            if crops:
                out.status(f"wrote {len(crops)} crop(s): {crops[0]}" + (" ..." if len(crops) > 1 else ""))
    # With --force, files an earlier run left for this image (more crops, a drawing of old boxes) go.
    writer.remove_stale(names, written, crops=detect.crop, annotated=detect.draw)
    if len(writer.failed) > failures_before:
        files["not_written"] = writer.failed[failures_before:]
    return files


def _report(results: list["InputResult"], runner: "Runner", detect: "DetectOptions", writer: Writer,
            out: "Output", error: Optional[str] = None) -> None:
    import json

    from .report import coco, document, print_table, tsv_lines

    model, family = runner.target.model, runner.target.family.name

    def payload(form: str) -> dict:
        # Built when needed: a failed write of an image (or of the file itself) shows in what comes after.
        if form == "coco":
            return coco(results, detect.target)
        return document(results, model, family, detect.target, error or _not_written(writer))

    if writer.plan.document is not None and detect.format:
        data = json.dumps(payload(detect.format), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        if path := writer.write(writer.plan.document, data):
            out.status(f"wrote {path}")
    if detect.format and detect.output_dir is None:
        out.emit_json(payload(detect.format))
    elif out.json_mode:
        out.emit_json(payload("json"))
    elif any(r.grounded.detections for r in results):
        if out.stdout.isatty():
            print_table(results, out.stdout)
        else:
            for line in tsv_lines(results):
                out.line(line)


def _not_written(writer: Writer) -> Optional[str]:
    count = len(writer.failed)
    return f"could not write {count} output file(s), the first {writer.failed[0]['file']}" if count else None
