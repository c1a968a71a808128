"""How the CLI shows detect: boxes as a table, TSV lines or JSON; annotated images and crops written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from mmcli.core.driver import Presenter
from mmcli.tasks.detect.outputs import OutputPlan, Writer, check_plan

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions
    from mmcli.core.job import Job, Region
    from .render import Output
    from mmcli.core.runner import Result
    from mmcli.tasks.detect.jobs import DetectOptions, Detections
    from mmcli.tasks.specs import Planned

RAW_PREVIEW = 300


def run_detect(inputs: list[str], opts: "CommonOptions", detect: "DetectOptions") -> None:
    """Ground `detect.target` in every input; show, draw and save the results."""
    from mmcli.core.driver import drive
    from .render import Output
    from mmcli.tasks.specs import TASKS

    out = Output(json_mode=opts.output.json)
    drive(TASKS["detect"], inputs, detect.target, detect, opts, DetectView(out, detect, opts.output.dry_run))


class DetectView(Presenter):
    """detect on the CLI: each answer's boxes drawn and cropped as it comes; a table, TSV lines or JSON at the
    end. What was found before a failure is shown (and saved) before the error."""

    def __init__(self, out: "Output", detect: "DetectOptions", dry_run: bool) -> None:
        super().__init__(out)
        self.out, self.detect, self.dry = out, detect, dry_run
        self.writer: Optional[Writer] = None
        self.files: list[dict] = []  # per answered input: the files written for it
        self.stop_spinner = None

    def before_connect(self, selected) -> None:
        """Every output file checked before any server is started: no clobbered file after a long wait."""
        from mmcli.tasks.detect.jobs import output_plan

        plan: OutputPlan = output_plan(selected, self.detect)
        if not self.dry:
            check_plan(plan, draw=self.detect.draw, crop=self.detect.crop)
        self.writer = Writer(plan, self.out)

    def dry_run(self, runner, planned: "Planned") -> None:
        """Every request's plan."""
        plans = [runner.plan(job) for job in planned.jobs]
        if self.out.json_mode:
            self.out.emit_json({"plans": [plan.to_dict() for plan in plans]})
            return
        for plan in plans:
            self.out.show_plan(plan)

    def begin(self, job: "Job", planned: "Planned"):
        """Which input is asked about, when there are several."""
        if len(planned.jobs) > 1:
            self.out.status(f"[{len(self.files) + 1}/{len(planned.jobs)}] {job.label}")
        self.stop_spinner = self.out.start_spinner("waiting for the model")
        return None

    def done(self, result: "Result", planned: "Planned") -> None:
        """Warnings, and the drawings and crops of this answer."""
        self._stop_spinner()
        self.files.append(self._finish(result))

    def finished(self, found: "Detections", planned: "Planned") -> None:
        """The results shown and saved; then --strict and failed writes decide the exit status."""
        from mmcli.tasks.detect.jobs import check_strict

        self._report(found)
        if self.detect.strict:
            check_strict(found.inputs)
        self.writer.raise_if_failed()  # after the results are shown: they were paid for

    def stopped(self, found: "Detections", planned: "Planned", cause: BaseException) -> None:
        """What was found before the failure (a partial answer may still hold boxes) is shown and saved."""
        from .show_answer import reason

        self._stop_spinner()
        for region, result in zip(found.regions[len(self.files):], found.inputs[len(self.files):]):
            self.files.append(self._write_images(region, result.grounded.detections))
        if found.inputs:
            self._report(found, error=reason(cause))

    def _stop_spinner(self) -> None:
        if self.stop_spinner is not None:
            self.stop_spinner()
            self.stop_spinner = None

    def _finish(self, result: "Result") -> dict:
        from .show_answer import check_result
        from mmcli.tasks.detect.jobs import ground_result

        job = result.job
        found = ground_result(result)
        for warning in found.grounded.warnings:
            self.out.warn(f"{job.label}: {warning}")
        check_result(result, self.out)
        if not found.grounded.detections:
            self.out.status(f"no detections in {job.label}; the model answered: {_preview(result.text)}")
        return self._write_images(job.meta, found.grounded.detections)

    def _write_images(self, region: "Region", detections) -> dict:
        if self.detect.draw or self.detect.crop:
            return _write_images(region, detections, self.detect, self.writer, self.out)
        return {}

    def _report(self, found: "Detections", error: Optional[str] = None) -> None:
        for result, files in zip(found.inputs, self.files):
            result.files = files
        _report(found, self.detect, self.writer, self.out, error)


def _preview(text: str) -> str:
    from mmcli.tasks.detect.labels import clean_label

    return repr(clean_label(text, RAW_PREVIEW)) if text.strip() else "(nothing)"


def _write_images(region: "Region", detections, detect: "DetectOptions", writer: Writer, out: "Output") -> dict:
    names = region.names
    files: dict = {}
    written: list = []
    failures_before = len(writer.failed)
    if detections:
        from mmcli.media.image import oriented_bgr
        from mmcli.tasks.detect.draw import annotate, crop, png_bytes, to_rgb_image

        image = to_rgb_image(oriented_bgr(region.original))
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


def _report(found: "Detections", detect: "DetectOptions", writer: Writer, out: "Output",
            error: Optional[str] = None) -> None:
    import json

    from mmcli.tasks.detect.jobs import detections_fields
    from mmcli.tasks.detect.report import coco, detections_table, tsv_lines

    results = found.inputs

    def payload(form: str) -> dict:
        # Built when needed: a failed write of an image (or of the file itself) shows in what comes after.
        if form == "coco":
            return coco(results, detect.target)
        data = detections_fields(found)
        problem = error or _not_written(writer)
        if problem:
            data["error"] = problem
        return data

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
            out.console().print(detections_table(results))
        else:
            for line in tsv_lines(results):
                out.line(line)


def _not_written(writer: Writer) -> Optional[str]:
    count = len(writer.failed)
    return f"could not write {count} output file(s), the first {writer.failed[0]['file']}" if count else None
