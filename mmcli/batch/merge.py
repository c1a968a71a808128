"""docqa's merge step for exported runs: a second batch file.

When a document needs several requests, their answers are merged by one more request that can
only be written once they are known. `mmcli batch collect` therefore writes the merge requests of
every document whose batch answers are all in as FILE.merge.jsonl (with its manifest); run it
through the same batch runner, then `mmcli batch collect FILE.merge.jsonl OUTPUT.jsonl` writes the
documents' lines, as a live run would.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.endpoint import Target
    from ..net.replies import Piece

from .recorded import MERGED  # noqa: F401  (the mode of a merge manifest's jobs)


def _target(manifest: dict) -> "Target":
    from ..settings import Endpoint, Profile, Quirks, Settings
    from ..core.endpoint import Target
    from ..families import FAMILIES

    quirks = Quirks(**manifest.get("quirks", {}))
    endpoint = Endpoint(base_url=manifest["base_url"], profile=Profile("export", manifest["base_url"], quirks=quirks))
    settings = Settings(endpoint=endpoint, model=manifest["model"], family=manifest["family"])
    return Target(settings, manifest["model"], FAMILIES[manifest["family"]], "export")


def merge_request(job_id: str, job: dict, pieces: list["Piece"], manifest: dict) -> tuple[bytes, dict]:
    """The merge request of one document (a batch-file line) and its entry in the merge manifest."""
    from ..events import Events
    from ..core.runner import Runner
    from ..tasks.common import Context, total_usage
    from ..tasks.docqa import merge_job_from
    from .export import request_line
    from .recorded import saved_generation

    target = _target(manifest)
    generation = replace(saved_generation(job.get("generation", {})), stream=False)
    ctx = Context(target, None, generation, Events())
    entries = list(job["requests"].values())
    partials = [(e["meta"]["pages"], p.text) for p, e in zip(pieces, entries)]
    merge = merge_job_from(job["prompt"], partials, job["pages"], ctx)
    plan = Runner(target).plan(merge, stream=False)
    custom_id = f"{job_id}#merge"
    batches = [{"pages": e["meta"]["pages"], "answer": p.text, "finish_reason": p.finish_reason, "usage": p.usage}
               for p, e in zip(pieces, entries)]
    entry = {key: job[key] for key in ("command", "sources", "prompt", "pages", "generation", "warnings")
             if key in job}
    entry.update(mode=MERGED, batches=batches, batch_usage=total_usage([p.usage for p in pieces]),
                 batch_requests=entries,
                 requests={custom_id: {"plan": plan.summary(), "label": "the merge",
                                       "meta": {"pages": list(job["pages"])}}})
    return request_line(custom_id, plan.request), entry


def merged_fields(job: dict, piece: "Piece", manifest: dict) -> dict:
    """A merged document's results fields: the batches and the merge through docqa's own finish."""
    from ..net.replies import Piece
    from .recorded import finished_fields

    batch_pieces = [Piece(text=b["answer"], finish_reason=b.get("finish_reason"), usage=dict(b.get("usage") or {}),
                          model=manifest.get("model")) for b in job["batches"]]
    merge_entry = next(iter(job["requests"].values()))
    entries = list(job.get("batch_requests") or []) + [merge_entry]
    return finished_fields(job, entries, batch_pieces + [piece], manifest)


def merge_paths(export: Path) -> tuple[Path, Path]:
    """FILE.merge.jsonl and its manifest, beside FILE.jsonl."""
    from .export import manifest_path

    stem = export.name.removesuffix(".jsonl")
    path = export.with_name(f"{stem}.merge.jsonl")
    return path, manifest_path(path)


def write_merges(export: Path, lines: list[bytes], jobs: dict, manifest: dict) -> Path:
    """Write the merge batch file and its manifest (replacing an earlier round's)."""
    from ..files import write_atomic

    path, manifest_file = merge_paths(export)
    data = b"".join(lines)
    merge_manifest = {key: manifest[key] for key in ("format", "model", "family", "base_url", "quirks")
                      if key in manifest}
    merge_manifest.update(parent=str(export), files=[{"path": str(path), "lines": len(lines), "bytes": len(data)}], jobs=jobs, failed=[])
    write_atomic(path, data, force=True)
    write_atomic(manifest_file, (json.dumps(merge_manifest, ensure_ascii=False, indent=1) + "\n").encode(), force=True)
    return path
