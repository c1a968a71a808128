"""Folders named as inputs become the images and PDFs inside them, in a stable order."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mmcli.errors import MediaError

SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".pdf"})


def expand_folders(specs: list[str]) -> list[str]:
    """Each folder replaced by its image and PDF files (recursively, sorted, hidden ones skipped)."""
    expanded: list[str] = []
    for spec in specs:
        path = Path(spec)
        if spec == "-" or "://" in spec or spec.startswith("data:") or not path.is_dir():
            expanded.append(spec)
            continue
        found = sorted(str(p) for p in _walk(path) if p.suffix.lower() in SUFFIXES)
        if not found:
            raise MediaError("no images or PDFs in the folder", where=spec,
                             hint="files are picked by extension: " + ", ".join(sorted(SUFFIXES)))
        expanded += found
    return expanded


def _walk(root: Path):
    for folder, dirs, files in os.walk(root):
        # An index kept inside the folder it indexes must not index its own thumbnails.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _is_index(Path(folder) / d))
        for name in files:
            if not name.startswith("."):
                yield Path(folder) / name


def _is_index(folder: Path) -> bool:
    return (folder / "index.json").is_file() and any(folder.glob("vectors*.npy"))


def content_hash(data: bytes) -> str:
    """The SHA-256 of a file's contents: what tells the index a file is new or changed."""
    return hashlib.sha256(data).hexdigest()
