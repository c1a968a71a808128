"""Grounding: one job per image or PDF page, the answer parsed and mapped back to the original pixels."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from mmcli.errors import MediaError, OutputUnparseable, UsageError
from .outputs import DOCUMENT_NAMES, OutputPlan, names_for
from .prompts import default_space, grounding_prompt
from mmcli.core.job import Job, Region
from mmcli.media.document import DEFAULT_MAX_PAGES, Page, Selected, render, select_pages
from mmcli.media.pdf import read_password
from mmcli.media.prepare import image_budget
from ..common import Context

if TYPE_CHECKING:
    from .report import InputResult
    from mmcli.core.inputs import CheckedInput
    from mmcli.core.runner import Result


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
    max_pages: int = DEFAULT_MAX_PAGES
    guided: Optional[bool] = None  # boxes under a schema; None: when the family and endpoint allow


def choose(checked: list["CheckedInput"], detect: DetectOptions, pass_url: bool) -> list[Selected]:
    """Refuse what cannot work, open every PDF and choose its pages, before anything is sent."""
    if pass_url:
        raise UsageError("detect cannot use --pass-url", "boxes are mapped and drawn on pixels mmcli has read",
                         hint="leave out --pass-url; mmcli downloads and resizes the image itself")
    return select_pages(checked, detect.pages, read_password(detect.password_env), detect.max_pages)


def output_plan(selected: list[Selected], detect: DetectOptions) -> OutputPlan:
    """Every file the run may write, decided before anything is sent."""
    document = None
    if detect.format and detect.output_dir is not None:
        document = detect.output_dir / DOCUMENT_NAMES[detect.format]
    names = [names_for(s.source.label, s.source.path, detect.output_dir, page if s.pdf else None)
             for s in selected for page in s.pages]
    inputs = [s.source.path for s in selected if s.source.path is not None]
    return OutputPlan(names=names if detect.draw or detect.crop else [], document=document, inputs=inputs,
                      force=detect.force)


def detect_jobs(selected: list[Selected], detect: DetectOptions, ctx: Context) -> list[Job]:
    """One job per image and per chosen page, each with the grounding prompt its family was trained on."""
    family = ctx.target.family
    budget = image_budget(family, ctx.media)
    space = default_space(family.box_convention, detect.coords)
    with ctx.events.spinner(f"preparing {sum(len(s.pages) for s in selected)} image(s)"):
        pages = render(selected, budget, lossless=ctx.media.lossless, warn=ctx.events.warn)
    jobs = []
    for page in pages:
        item, original = page.item, _original(page)
        guided = _guided(detect, ctx, space, (item.sent_width, item.sent_height))
        prompt = grounding_prompt(family.name, detect.target, points=detect.points, space=space,
                                  sent_size=(item.sent_width, item.sent_height))
        names = names_for(page.source.label, page.source.path, detect.output_dir, page.page)
        item.details.update(coordinate_space=space, prompt=prompt)
        if detect.draw:
            item.details["annotated"] = str(names.annotated())
        label = page.source.label if page.page is None else f"{page.source.label} page {page.page}"
        rendered = page.rendered
        region = Region(page.source.label, page.page, (item.sent_width, item.sent_height),
                        (original.width, original.height), space,
                        None if rendered is None else (rendered.width_pt, rendered.height_pt),
                        original=original, names=names)
        job = ctx.job([item], prompt, label=label, meta=region, named_warnings=True)
        if guided is not None:
            job.generation = replace(job.generation, schema=guided)
        jobs.append(job)
    return jobs


def _guided(detect: DetectOptions, ctx: Context, space: str, sent: tuple[int, int]):
    from mmcli.schema import guided_boxes

    quirks = ctx.target.settings.endpoint.quirks
    # Known to be vLLM: it listed max_model_len with its models (the endpoint is not asked when the model and
    # family are named), or it is a server mmcli started (media uuids are vLLM's).
    vllm = ctx.target.max_model_len is not None or quirks.media_uuid
    return guided_boxes(ctx.target.family.name, quirks.structured_output, detect.guided, space, sent, detect.points,
                        vllm)


def _original(page: Page):
    """The pixels boxes are mapped to and drawn on: the image itself, or the rendered page."""
    if page.image is not None:
        return page.image
    from mmcli.media.image import open_image

    image = open_image(page.item.data or b"", f"{page.source.label} page {page.page}")
    if (image.width, image.height) != (page.item.sent_width, page.item.sent_height):
        raise MediaError("cannot render PDF page", f"page {page.page} came out {image.width}x{image.height}, "
                         f"not {page.item.sent_width}x{page.item.sent_height}", where=page.source.label)
    return image


def ground_result(result: "Result") -> "InputResult":
    """The detections of one answer, in the original image's pixels (and PDF points for pages)."""
    from .parse import parse_answer
    from .report import InputResult
    from .result import ground

    region: Region = result.job.meta
    parsed = parse_answer(result.text)
    grounded = ground(parsed, region.space, region.sent_size, region.original_size)
    return InputResult(region.source, region.page, region.original_size, region.sent_size, grounded, parsed,
                       result.text, result.finish_reason, result.usage, page_size_pt=region.page_size_pt,
                       error=None if result.ok else (result.error.message() if result.error else "interrupted"))


def unreadable(result: "InputResult") -> Optional[str]:
    """Why an answer's boxes could not (all) be read, or None when they could."""
    parsed = result.parsed
    if parsed.form == "none":
        return "no boxes or points in the answer" if result.raw.strip() else "the answer is empty"
    if parsed.truncated:
        return "the answer was cut off"
    if parsed.skipped:
        return f"{parsed.skipped} item(s) could not be read"
    return None


def check_strict(results: list["InputResult"]) -> None:
    """--strict: an OutputUnparseable error (exit 7) when any answer had unreadable boxes."""
    failed = [(r, why) for r in results if (why := unreadable(r))]
    if not failed:
        return
    first, why = failed[0]
    where = first.display_name + (f" and {len(failed) - 1} more" if len(failed) > 1 else "")
    raise OutputUnparseable("model output could not be parsed", why, where=where,
                            hint="the raw answer is in the --json output; check --family and --coords, "
                                 "or leave out --strict to keep what could be read")


@dataclass
class Detections:
    """detect's results: one entry per image or page, boxes in original pixels."""

    inputs: list["InputResult"] = field(default_factory=list)
    target: str = ""
    regions: list = field(default_factory=list, repr=False)  # each input's Region: sizes, pixels, output names
    model: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    plans: list = field(default_factory=list, repr=False)
    family: Optional[str] = None
    verified: Optional[bool] = None
    usage: dict = field(default_factory=dict)

    @property
    def originals(self) -> list:
        """Each input's pixels, for drawing."""
        return [region.original for region in self.regions]

    @property
    def items(self) -> list:
        """Every detection of every input, in order."""
        return [d for r in self.inputs for d in r.grounded.detections]

    def to_coco(self) -> dict:
        """The results as a COCO dataset."""
        from .report import coco

        return coco(self.inputs, self.target)

    def draw(self, path, index: int = 0, *, force: bool = False) -> Path:
        """Write input `index` with its boxes drawn on it, as PNG at `path` (never over a file without force)."""
        from mmcli.files import write_atomic
        from .draw import annotate, png_bytes, to_rgb_image
        from mmcli.media.image import oriented_bgr

        image = to_rgb_image(oriented_bgr(self.originals[index]))
        detections = self.inputs[index].grounded.detections
        return write_atomic(Path(path), png_bytes(annotate(image, detections)), force=force)


def finish_detect(results: list["Result"], target: str, warnings: list[str]) -> Detections:
    """detect's finish: every answer (a failed one only when part of it arrived) parsed and mapped back."""
    from ..common import add_warnings, all_verified, total_usage

    kept = [r for r in results if r.ok or r.text]
    found = Detections(target=target, warnings=warnings, verified=all_verified(results) if kept else None,
                       usage=total_usage([r.usage for r in results]))
    for result in kept:
        grounded = ground_result(result)
        warnings += [w for w in (f"{result.job.label}: {w}" for w in grounded.grounded.warnings) if w not in warnings]
        add_warnings(warnings, result)
        found.inputs.append(grounded)
        found.regions.append(result.job.meta)
        found.plans.append(result.plan)
        found.model = found.model or result.model or result.job.model
        found.family = found.family or result.job.family.name
    return found


def detections_fields(found: Detections) -> dict:
    """The one JSON shape of detect's results: --json, a results line, a collected line."""
    from mmcli.core.plan import summed_totals

    totals = summed_totals([plan.totals() for plan in found.plans]) if found.plans else None
    data = {"target": found.target, "model": found.model, "family": found.family,
            "inputs": [r.to_dict() for r in found.inputs], "usage": found.usage,
            "planned_visual_tokens": totals["visual_tokens"] if totals else None, "verified": found.verified,
            "plan": {"totals": totals} if totals else None}
    if found.warnings:
        data["warnings"] = list(found.warnings)
    return data
