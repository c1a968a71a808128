"""The local index: plain files in one folder, searched by brute force.

    DIR/index.json   model, preset, dims and one entry per row (source, path, page, content hash, thumbnail)
    DIR/vectors.npy  float32, one L2-normalised row per entry (loaded with mmap_mode="r")
    DIR/thumbs/      small JPEGs for contact sheets

vectors.npy is written before index.json, and index.json says how many rows it describes, so an
interrupted write is found when the index is next opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmcli.errors import UsageError
from mmcli.files import check_output_dir, make_output_dir, write_atomic

FORMAT = "mmcli-index"
VERSION = 1
INDEX_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
THUMBS = "thumbs"
THUMB_SIDE = 192


@dataclass
class Index:
    """An index as read from disk (vectors memory-mapped) or about to be written."""

    folder: Path
    model: str
    preset: str
    dims: int = 0
    entries: list[dict] = field(default_factory=list)
    vectors: object = None  # numpy array (rows, dims), float32

    def key(self, entry: dict) -> tuple:
        """What makes two entries the same row: the file and its page."""
        return (entry.get("path") or entry.get("source"), entry.get("page"))

    def has(self, path: str, page: Optional[int], sha: str) -> bool:
        """Whether this page of this file, with these contents, is already indexed."""
        return any(self.key(e) == (path, page) and e.get("sha256") == sha for e in self.entries)


def open_index(folder: Path) -> Optional[Index]:
    """The index in `folder`, or None when there is none yet; a damaged one is a usage error."""
    import numpy as np

    meta_path = folder / INDEX_FILE
    if folder.exists() and not folder.is_dir():
        raise UsageError("--index names a file", "an index is a folder", where=str(folder),
                         hint="give a folder: a new one, or one made by mmcli embed --index")
    if not meta_path.exists():
        if folder.exists() and any(folder.iterdir()):
            raise UsageError("not an mmcli index", "the folder exists and is not empty", where=str(folder),
                             hint="give a new folder, or one made by mmcli embed --index")
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        vectors = np.load(folder / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError("cannot read the index", str(exc), where=str(folder),
                         hint="rebuild it: remove the folder and run mmcli embed --index again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError("not an mmcli index", f"{INDEX_FILE} is not mmcli's", where=str(folder))
    entries = meta.get("entries") or []
    rebuild = "rebuild it: remove the folder and run mmcli embed --index again"
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError("the index is damaged", f"{INDEX_FILE} has no list of entries", where=str(folder), hint=rebuild)
    if vectors.ndim != 2 or vectors.shape[0] != len(entries):
        raise UsageError("the index is inconsistent", f"{len(entries)} entries but vectors of shape "
                         f"{tuple(vectors.shape)} (an interrupted write?)", where=str(folder), hint=rebuild)
    dims = meta.get("dims", vectors.shape[1])
    if isinstance(dims, bool) or not isinstance(dims, int) or (entries and dims != vectors.shape[1]):
        raise UsageError("the index is damaged", f"{INDEX_FILE} says dims {dims!r}, the vectors have "
                         f"{vectors.shape[1]}", where=str(folder), hint=rebuild)
    if not isinstance(meta.get("model"), str) or not isinstance(meta.get("preset"), str):
        raise UsageError("the index is damaged", f"{INDEX_FILE} names no model or preset", where=str(folder),
                         hint=rebuild)
    return Index(folder, meta["model"], meta["preset"], dims or vectors.shape[1], entries, vectors)


def gone(entry: dict) -> bool:
    """Whether the local file an entry was made from no longer exists (its rows leave the index)."""
    import os

    path = entry.get("path")
    return isinstance(path, str) and not os.path.exists(path)


def check_compatible(index: Index, model: Optional[str], preset: str, doing: str) -> None:
    """Refuse vectors of another model or preset: their scores would mean nothing."""
    if model and model != index.model:
        raise UsageError(f"cannot {doing} with another model", f"the index was built with {index.model}, "
                         f"this endpoint's model is {model}", where=str(index.folder),
                         hint=f"pass --model {index.model}, or build a new index for {model}")
    if preset != index.preset:
        raise UsageError(f"cannot {doing} with another preset", f"the index uses --preset {index.preset}",
                         where=str(index.folder), hint=f"pass --preset {index.preset} or leave it out")


def updated(index: Index, new_entries: list[dict], new_vectors: list[list[float]]) -> Index:
    """The index with new rows added; a file's old rows are dropped when its contents changed or the file
    was deleted."""
    import numpy as np

    changed = {(e.get("path") or e.get("source")) for e in new_entries}
    fresh = {(e.get("path") or e.get("source"), e.get("sha256")) for e in new_entries}
    keep = [i for i, e in enumerate(index.entries)
            if not gone(e) and ((e.get("path") or e.get("source")) not in changed
                                or (e.get("path") or e.get("source"), e.get("sha256")) in fresh)]
    new = normalized_rows(np.asarray(new_vectors, dtype=np.float32)) if new_vectors else None
    dims = new.shape[1] if new is not None else index.dims
    if index.entries and new is not None and new.shape[1] != index.dims:
        raise UsageError("the vectors do not fit the index", f"{new.shape[1]} dimensions, the index has "
                         f"{index.dims}", where=str(index.folder))
    old = np.asarray(index.vectors[keep], dtype=np.float32) if keep else np.zeros((0, dims), np.float32)
    vectors = old if new is None else np.concatenate([old, new])
    entries = [index.entries[i] for i in keep] + list(new_entries)
    return Index(index.folder, index.model, index.preset, int(dims), entries, vectors)


def normalized_rows(matrix):
    """Rows scaled to unit length (zero rows left as they are), so a dot product is the cosine."""
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1)).astype(np.float32)


def save(index: Index) -> None:
    """Write the vectors, then the entries that describe them (both atomically)."""
    from .sinks import npy_bytes

    check_output_dir(index.folder)
    make_output_dir(index.folder)
    write_atomic(index.folder / VECTORS_FILE, npy_bytes(index.vectors), force=True)
    meta = {"format": FORMAT, "version": VERSION, "model": index.model, "preset": index.preset,
            "dims": index.dims, "rows": len(index.entries), "entries": index.entries}
    write_atomic(index.folder / INDEX_FILE, (json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode(),
                 force=True)


def save_thumbnail(folder: Path, name: str, data: bytes) -> Optional[str]:
    """A small JPEG of an embedded image in DIR/thumbs (for contact sheets); its relative path."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=80)
    except (OSError, UnidentifiedImageError):
        return None  # a contact sheet shows a blank tile; the vector is what matters
    make_output_dir(folder / THUMBS)
    write_atomic(folder / THUMBS / f"{name}.jpg", buffer.getvalue(), force=True)
    return f"{THUMBS}/{name}.jpg"


def search(index: Index, query: list[float], k: int) -> list[tuple[int, float]]:
    """The k rows nearest to `query` by cosine similarity, best first: (row, score)."""
    import numpy as np

    q = np.asarray(query, dtype=np.float32)
    if q.shape != (index.dims,):
        raise UsageError("the query does not fit the index", f"{q.shape[0]} dimensions, the index has {index.dims}",
                         where=str(index.folder))
    norm = float(np.linalg.norm(q))
    q = q / norm if norm > 0 else q
    scores = np.asarray(index.vectors) @ q
    k = min(k, scores.shape[0])
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in top]
