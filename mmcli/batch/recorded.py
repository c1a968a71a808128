"""Results rebuilt from an export's manifest and a batch runner's answers, finished by the task's own finish."""

from __future__ import annotations

from typing import Optional

MERGED = "merged"  # the mode of a merge manifest's jobs (mmcli.batch.merge)

def finished_fields(job: dict, entries: list[dict], pieces: list, manifest: dict,
                    warnings: Optional[list] = None) -> dict:
    """The task's finish over results rebuilt from the recorded requests and their answers; `warnings`, when
    given, is the job's list of warnings, which the finish adds to."""
    from ..tasks.specs import TASKS, Planned

    task = TASKS[job["command"]]
    results = [recorded_result(entry, piece, job, manifest) for entry, piece in zip(entries, pieces)]
    mode = "batches" if job.get("mode") == MERGED else job.get("mode", "single")
    if mode == "batches":  # the merge lists the pages and sends none, as a live merge does
        results[-1].job.listed = []
    planned = Planned([r.job for r in results], job["prompt"], target=job.get("target", job["prompt"]),
                      mode=mode, numbers=list(job.get("pages") or []))
    if warnings is None:
        warnings = list(job.get("warnings") or [])
    fields = task.fields(task.finish(planned, results, warnings))
    failed = next((r.error for r in results if r.error is not None), None)
    if failed is not None:  # an answer that does not match --schema: kept, with the error a live run gives
        from .results import error_fields

        fields["error"] = error_fields(failed)
    return fields


def saved_generation(saved: dict):
    """The GenerationOptions an export saved (its --schema rebuilt, so answers are checked against it)."""
    from ..settings import GenerationOptions
    from ..schema import Schema

    schema = saved.get("schema")
    return GenerationOptions(**{**saved, "schema": Schema(**schema) if schema else None})


def recorded_result(entry: dict, piece, job: dict, manifest: dict):
    """A Result as a live run would have it: the recorded plan and meta, the answer as the batch runner gave it."""
    from ..core.job import DocPart, Job, Region
    from ..families import FAMILIES
    from ..core.plan import RecordedPlan
    from ..core.runner import Result, check_structured

    meta_data = entry.get("meta")
    meta = None
    if meta_data is not None:
        meta = Region.from_dict(meta_data) if job["command"] == "detect" else DocPart.from_dict(meta_data)
    generation = saved_generation(job.get("generation", {}))
    family = FAMILIES.get(manifest.get("family"), FAMILIES["generic"])
    recorded = Job(content=[], prompt=job["prompt"], model=manifest.get("model"), family=family,
                   generation=generation, label=entry.get("label", ""), meta=meta,
                   named_warnings=job["command"] == "detect")
    result = Result(recorded, RecordedPlan(entry["plan"]), text=piece.text, model=piece.model or manifest.get("model"),
                    finish_reason=piece.finish_reason, usage=dict(piece.usage))
    check_structured(result)
    return result
