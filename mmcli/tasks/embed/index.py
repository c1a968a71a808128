"""The local index: plain files in one folder, searched by brute force.

    DIR/index.json             model, preset, dims, the vectors file's name and one entry per row (source,
                               path, page, content hash, thumbnail)
    DIR/vectors-<sha256>.npy   float32, one L2-normalised row per entry (loaded with mmap_mode="r"); named
                               by its contents (indexes written before that have DIR/vectors.npy)
    DIR/thumbs/                small JPEGs for contact sheets

An update writes a new vectors file beside the old one, then index.json naming it (both atomically), then
removes the old one: index.json is the commit, so a run killed in between leaves the previous index whole.
Writers take an exclusive lock on the folder (flock) and re-read the index under it, so two runs adding to
one index both keep their rows; readers take a shared lock while they open it.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional

from mmcli.errors import UsageError
from mmcli.files import check_output_dir, flocked, make_output_dir, write_atomic

FORMAT = "mmcli-index"
VERSION = 2  # 2: index.json names its vectors file; 1 (still read): DIR/vectors.npy
INDEX_FILE = "index.json"
VECTORS_FILE = "vectors.npy"  # the vectors of a version 1 index
VECTORS_NAME = re.compile(r"vectors(-[0-9a-f]{16})?\.npy")  # the only names index.json may give (no paths)
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


def open_index(folder: Path, waiting: Optional[Callable[[str], None]] = None) -> Optional[Index]:
    """The index in `folder`, or None when there is none yet; a damaged one is a usage error. Read under a shared
    lock, so a writer never removes the vectors file between index.json and the vectors being mapped."""
    if folder.exists() and not folder.is_dir():
        raise UsageError("--index names a file", "an index is a folder", where=str(folder),
                         hint="give a folder: a new one, or one made by mmcli embed --index")
    if not folder.exists():
        return None
    try:
        with locked(folder, exclusive=False, waiting=waiting):
            return read_index(folder)
    except OSError as exc:
        raise UsageError("cannot read the index", exc.strerror or str(exc), where=str(folder),
                         hint="check that the folder can be read (and its files)") from None


def read_index(folder: Path) -> Optional[Index]:
    """The index in an existing folder as it is on disk (the caller holds the folder's lock), or None."""
    import numpy as np

    meta_path = folder / INDEX_FILE
    if not meta_path.exists():
        if any(folder.iterdir()):
            raise UsageError("not an mmcli index", "the folder exists and is not empty", where=str(folder),
                             hint="give a new folder, or one made by mmcli embed --index")
        return None
    rebuild = "rebuild it: remove the folder and run mmcli embed --index again"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        name = vectors_name(meta, folder, rebuild)
        vectors = np.load(folder / name, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError("cannot read the index", str(exc), where=str(folder), hint=rebuild) from None
    entries = meta.get("entries") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError("the index is damaged", f"{INDEX_FILE} has no list of entries", where=str(folder), hint=rebuild)
    damaged = next((problem for problem in map(_entry_problem, entries) if problem), None)
    if damaged:
        raise UsageError("the index is damaged", f"{INDEX_FILE} has an entry whose {damaged}", where=str(folder),
                         hint=rebuild)
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


# What each field of an entry may hold; the search and its contact sheet use them as these types.
_ENTRY_TYPES = {"source": (str,), "path": (str, type(None)), "page": (int, type(None)), "kind": (str, type(None)),
                "sha256": (str, type(None)), "thumbnail": (str, type(None))}


def _entry_problem(entry: dict) -> Optional[str]:
    """What is wrong with one entry of index.json (a field of the wrong type), or None."""
    if "source" not in entry:
        return "'source' is missing"
    for key, types in _ENTRY_TYPES.items():
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{key!r} is {type(value).__name__} {str(value)[:40]!r}"
    thumb = entry.get("thumbnail")
    if thumb is not None and (PurePosixPath(thumb).is_absolute() or ".." in PurePosixPath(thumb).parts
                              or PurePosixPath(thumb).parts[:1] != (THUMBS,)):
        return f"'thumbnail' {thumb[:60]!r} is not in {THUMBS}/"
    return None


def vectors_name(meta: object, folder: Path, hint: str) -> str:
    """The vectors file index.json names (a version 1 index: vectors.npy); never a path out of the folder."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError("not an mmcli index", f"{INDEX_FILE} is not mmcli's", where=str(folder))
    name = meta.get("vectors", VECTORS_FILE)
    if not isinstance(name, str) or not VECTORS_NAME.fullmatch(name):
        raise UsageError("the index is damaged", f"{INDEX_FILE} names the vectors file {name!r}", where=str(folder),
                         hint=hint)
    return name


@contextmanager
def locked(folder: Path, *, exclusive: bool = True, waiting: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """The folder locked (flock on the folder itself, so no lock file joins the index): exclusive to write,
    shared to read. `waiting` hears once when another mmcli run holds it."""
    with flocked(folder, f"waiting for another mmcli run to finish writing the index {folder}", waiting,
                 exclusive=exclusive):
        yield


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


def add(index: Index, entries: list[dict], vectors: list[list[float]], thumbnails: dict[str, bytes],
        waiting: Optional[Callable[[str], None]] = None) -> Index:
    """New rows added to the index on disk, under its lock: read again first, so rows another run added since this
    one opened it are kept. `thumbnails` (name -> JPEG) are written for the entries that name them."""
    check_output_dir(index.folder)
    make_output_dir(index.folder)
    with writing(index.folder, waiting):
        current = read_index(index.folder) or Index(index.folder, index.model, index.preset)
        check_compatible(current, index.model, index.preset, "add to the index")
        for name, data in thumbnails.items():
            write_thumbnail(index.folder, name, data)
        final = updated(current, entries, vectors)
        write(final)
    return final


def save(index: Index) -> None:
    """Write the whole index (its rows replace what is on disk), under the folder's lock."""
    check_output_dir(index.folder)
    make_output_dir(index.folder)
    with writing(index.folder):
        write(index)


@contextmanager
def writing(folder: Path, waiting: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """The folder's exclusive lock; an index that cannot be locked or whose files cannot be removed is an output error."""
    from mmcli.errors import OutputNotWritten

    try:
        with locked(folder, waiting=waiting):
            yield
    except OSError as exc:  # write_atomic's own failures are OutputNotWritten already
        raise OutputNotWritten("cannot update the index", exc.strerror or str(exc), where=str(folder),
                               hint="check the folder's permissions and free space") from None


def write(index: Index) -> None:
    """A new vectors file, then index.json naming it (the commit), then the vectors files it no longer names
    (the previous one, or one a killed run left). The caller holds the folder's exclusive lock."""
    commit(index, write_vectors(index))


def write_vectors(index: Index) -> str:
    """The vectors written to a new file named by its contents (no index.json names it yet); its name."""
    import hashlib

    from .sinks import npy_bytes

    data = npy_bytes(index.vectors)
    name = f"vectors-{hashlib.sha256(data).hexdigest()[:16]}.npy"
    write_atomic(index.folder / name, data, force=True)
    return name


def commit(index: Index, name: str) -> None:
    """index.json written to name the vectors file `name`, then every other vectors file removed."""
    meta = {"format": FORMAT, "version": VERSION, "model": index.model, "preset": index.preset,
            "dims": index.dims, "rows": len(index.entries), "vectors": name, "entries": index.entries}
    write_atomic(index.folder / INDEX_FILE, (json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode(),
                 force=True)
    for old in index.folder.iterdir():
        if old.name != name and VECTORS_NAME.fullmatch(old.name) and old.is_file():
            old.unlink(missing_ok=True)  # a reader that mapped it keeps its copy; new readers read the new one


def thumbnail_jpeg(data: bytes) -> Optional[bytes]:
    """A small JPEG of an embedded image (for contact sheets); None when the bytes are not a picture Pillow reads."""
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
    return buffer.getvalue()


def thumbnail_path(name: str) -> str:
    """Where a thumbnail goes, relative to the index's folder."""
    return f"{THUMBS}/{name}.jpg"


def write_thumbnail(folder: Path, name: str, jpeg: bytes) -> None:
    """A thumbnail saved in DIR/thumbs."""
    make_output_dir(folder / THUMBS)
    write_atomic(folder / thumbnail_path(name), jpeg, force=True)


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
