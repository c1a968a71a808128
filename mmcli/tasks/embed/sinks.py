"""Where vectors go: JSON lines (stdout or a file) or a .npy matrix with a JSON sidecar of its rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from mmcli.errors import UsageError
from mmcli.files import check_target, write_atomic

if TYPE_CHECKING:
    from mmcli.core.runner import Result

FORMATS = ("jsonl", "npy")


def record(result: "Result", vector: list[float], batch: int, batch_size: int) -> dict:
    """One output line: where the vector comes from, its size, the vector, and the request's usage."""
    meta = result.job.meta
    return {"source": meta.source, "page": meta.page, "kind": meta.kind, "dims": len(vector),
            "embedding": vector, "usage": dict(result.usage), "batch": {"index": batch, "size": batch_size}}


def sidecar_path(path: Path) -> Path:
    """The JSON file listing a .npy file's rows: vecs.npy -> vecs.json."""
    return path.with_suffix(".json")


def check_output(fmt: str, output: Optional[Path], force: bool, inputs: list[Path]) -> list[Path]:
    """Refuse an output that cannot work (before anything is sent); the files that will be written."""
    if fmt not in FORMATS:
        raise UsageError("unknown output format", where=fmt, hint="use --format jsonl or --format npy")
    if fmt == "npy" and output is None:
        raise UsageError("--format npy needs an output file", hint="e.g. --format npy -o vecs.npy")
    if output is None:
        return []
    if fmt == "jsonl" and output.suffix.lower() == ".npy":
        # JSON lines in a file named .npy would fail whatever loads it with numpy, long after the run
        raise UsageError("a .npy output file needs --format npy", "the default format writes JSON lines",
                         where=str(output), hint=f"add --format npy, or name the file {output.with_suffix('.jsonl').name}")
    if fmt == "npy" and output.suffix.lower() != ".npy":
        raise UsageError("a .npy output file must end in .npy", where=str(output),
                         hint="the row list goes beside it as a .json file")
    targets = [output, sidecar_path(output)] if fmt == "npy" else [output]
    for target in targets:
        check_target(target, force=force, inputs=inputs)
    return targets


def write_jsonl(path: Path, records: list[dict], force: bool) -> None:
    """All records as JSON lines in one atomic write."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_atomic(path, text.encode("utf-8"), force=force)


def write_npy(path: Path, records: list[dict], meta: dict, force: bool) -> None:
    """The vectors as a float32 matrix (row i = record i) and the sidecar listing the rows."""
    import numpy as np

    matrix = np.asarray([r["embedding"] for r in records], dtype=np.float32)
    rows = [{k: v for k, v in r.items() if k not in ("embedding", "dims")} for r in records]
    sidecar = {**meta, "rows": len(rows), "dims": int(matrix.shape[1]) if rows else 0, "sources": rows}
    write_atomic(path, npy_bytes(matrix), force=force)
    write_atomic(sidecar_path(path), (json.dumps(sidecar, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
                 force=force)


def npy_bytes(matrix) -> bytes:
    """A numpy array in .npy format, in memory (for an atomic write)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    return buffer.getvalue()
