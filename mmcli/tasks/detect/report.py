"""How detect's results are shown: a table on a terminal, tab-separated lines in a pipe, JSON, COCO."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from .labels import clean_label
from .parse import Parsed
from .result import Grounded


@dataclass
class InputResult:
    """Everything detect learned about one image (or PDF page)."""

    source: str
    page: Optional[int]
    original_size: tuple[int, int]
    sent_size: tuple[int, int]
    grounded: Grounded
    parsed: Parsed
    raw: str
    finish_reason: Optional[str] = None
    usage: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # annotated: path, crops: [paths]
    error: Optional[str] = None
    page_size_pt: Optional[tuple[float, float]] = None  # PDF pages: boxes are also given in points

    @property
    def display_name(self) -> str:
        """How the input is named in tables and messages."""
        return self.source if self.page is None else f"{self.source} page {self.page}"

    def _detection(self, detection) -> dict:
        data = detection.to_dict()
        if self.page_size_pt is not None:
            # PDF points from the page's top-left corner, as displayed: independent of the render size.
            sx = self.page_size_pt[0] / self.original_size[0]
            sy = self.page_size_pt[1] / self.original_size[1]
            key = "bbox_pt" if detection.kind == "box" else "point_pt"
            exact = detection.exact or detection.coords
            data[key] = [round(v * (sx if i % 2 == 0 else sy), 2) for i, v in enumerate(exact)]
        return data

    def to_dict(self) -> dict:
        """The --json entry for this input."""
        data = {
            "source": self.source,
            "page": self.page,
            "page_size_pt": list(self.page_size_pt) if self.page_size_pt else None,
            "original_size": list(self.original_size),
            "sent_size": list(self.sent_size),
            "coordinate_space": self.grounded.space,
            "answer_format": self.parsed.form,
            "detections": [self._detection(d) for d in self.grounded.detections],
            "skipped": self.parsed.skipped,
            "dropped": self.grounded.dropped,
            "truncated": self.parsed.truncated,
            "warnings": self.grounded.warnings,
            "raw": self.raw,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "files": self.files,
        }
        if self.error:
            data["error"] = self.error
        return data


def document(results: list[InputResult], model: Optional[str], family: str, target: str,
             error: Optional[str] = None) -> dict:
    """The --json document: one entry per input, boxes in original-image pixels."""
    data = {"model": model, "family": family, "target": target, "inputs": [r.to_dict() for r in results]}
    if error:
        data["error"] = error
    return data


def coco(results: list[InputResult], target: str) -> dict:
    """The results as a COCO detection dataset (bbox = [x, y, width, height]; points as keypoints)."""
    categories: dict[str, int] = {}
    images, annotations = [], []
    for image_id, result in enumerate(results, start=1):
        width, height = result.original_size
        image = {"id": image_id, "file_name": result.source, "width": width, "height": height}
        if result.page is not None:
            image["page"] = result.page
        if result.files.get("annotated"):
            image["annotated_file"] = result.files["annotated"]
        images.append(image)
        for detection in result.grounded.detections:
            name = clean_label(detection.label, 200) or clean_label(target, 200)
            category = categories.setdefault(name, len(categories) + 1)
            annotations.append(_annotation(len(annotations) + 1, image_id, category, detection))
    return {
        "info": {"description": f"mmcli detect: {clean_label(target, 200)}", "version": "1.0",
                 "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "images": images,
        "annotations": annotations,
        "categories": [_category(cid, name, results) for name, cid in categories.items()],
    }


def _annotation(ann_id: int, image_id: int, category: int, detection) -> dict:
    data = {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 0}
    if detection.kind == "box":
        x1, y1, x2, y2 = detection.coords
        data.update(bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), segmentation=[])
    else:
        x, y = detection.coords
        data.update(bbox=[x, y, 0, 0], area=0, keypoints=[x, y, 2], num_keypoints=1, segmentation=[])
    if detection.extra:
        data["attributes"] = detection.extra
    return data


def _category(cid: int, name: str, results: list[InputResult]) -> dict:
    data = {"id": cid, "name": name, "supercategory": ""}
    if any(d.kind == "point" for r in results for d in r.grounded.detections):
        data.update(keypoints=["point"], skeleton=[])
    return data


def tsv_lines(results: list[InputResult]) -> list[str]:
    """One line per detection, tab-separated: input, label, then x1 y1 x2 y2 (or x y for points)."""
    lines = []
    for result in results:
        for detection in result.grounded.detections:
            fields = [_tsv(result.display_name), _tsv(detection.label), *map(str, detection.coords)]
            lines.append("\t".join(fields))
    return lines


def _tsv(text: str) -> str:
    return clean_label(text, 200) or "-"


def detections_table(results: list[InputResult]):
    """A rich table of every detection (labels shown as plain text, never as markup)."""
    from rich.table import Table
    from rich.text import Text

    points_only = all(d.kind == "point" for r in results for d in r.grounded.detections)
    coords = ("x", "y") if points_only else ("x1", "y1", "x2", "y2")
    table = Table(title="detections", title_justify="left")
    for column in ("input", "#", "label", *coords, "extra"):
        table.add_column(column, justify="right" if column in ("#", *coords) else "left")
    for result in results:
        for number, detection in enumerate(result.grounded.detections, start=1):
            values = [str(v) for v in detection.coords] + [""] * (len(coords) - len(detection.coords))
            extra = ", ".join(f"{k}={clean_label(str(v), 40)}" for k, v in detection.extra.items())
            table.add_row(Text(clean_label(result.display_name, 60)), str(number),
                          Text(clean_label(detection.label, 60) or "-"), *values, Text(extra))
    return table
