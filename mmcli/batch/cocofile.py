"""detect's datasets rebuilt from results lines, through the same report code as a single run."""

from __future__ import annotations

from types import SimpleNamespace


def _inputs(records: list[dict]) -> list:
    """Each image or page of the lines, shaped as the report code reads an InputResult."""
    from ..tasks.detect.result import Detection

    found = []
    for record in records:
        for entry in record.get("inputs") or record.get("detections") or []:  # "detections": older lines
            detections = [Detection("box" if "bbox" in d else "point", tuple(d.get("bbox") or d.get("point")),
                                    d.get("label", ""), d.get("extra") or {}) for d in entry.get("detections", [])]
            found.append(SimpleNamespace(source=entry["source"], page=entry.get("page"),
                                         original_size=tuple(entry["original_size"]), files=entry.get("files") or {},
                                         grounded=SimpleNamespace(detections=detections), entry=entry))
    return found


def coco_from_lines(records: list[dict], target: str) -> dict:
    """One COCO dataset for every image and page of the run."""
    from ..tasks.detect.report import coco

    return coco(_inputs(records), target)


def json_from_lines(records: list[dict], target: str) -> dict:
    """detect's --json document for every image and page of the run."""
    models = {r.get("model") for r in records if r.get("model")}
    return {"model": next(iter(models), None), "target": target,
            "inputs": [entry for r in records for entry in r.get("inputs") or r.get("detections") or []]}
