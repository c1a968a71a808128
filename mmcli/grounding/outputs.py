"""Where detect's files go: named and checked before anything is sent, written atomically afterwards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

from ..files import OutputError, check_target, prepare_output_dir, write_atomic
from .labels import slug

DOCUMENT_NAMES = {"json": "detections.json", "coco": "coco.json"}
_UNSAFE_NAME = re.compile(r"[^\w.+-]+")


@dataclass
class OutputNames:
    """The directory and base name one image's files are written under."""

    directory: Path
    name: str  # "photo" -> photo.boxes.png, photo.crop-01-dog.png

    def annotated(self) -> Path:
        """The annotated copy."""
        return self.directory / f"{self.name}.boxes.png"

    def crop(self, number: int, label: str) -> Path:
        """The crop of the number-th box (1-based)."""
        tail = slug(label)
        return self.directory / (f"{self.name}.crop-{number:02d}" + (f"-{tail}" if tail else "") + ".png")

    def crop_pattern(self) -> str:
        """A glob matching every crop file of this image."""
        return f"{_glob_escape(self.name)}.crop-[0-9][0-9]*.png"


@dataclass
class OutputPlan:
    """Every file a run may write, decided up front."""

    names: list[OutputNames] = field(default_factory=list)
    document: Optional[Path] = None
    inputs: list[Path] = field(default_factory=list)
    force: bool = False


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def base_name(label: str, path: Optional[Path], page: Optional[int] = None) -> str:
    """A file-name stem for an input: the file's own stem, a URL's last segment, or "stdin"."""
    if path is not None:
        stem = path.stem or path.name
    elif label == "stdin":
        stem = "stdin"
    elif label.lower().startswith(("http://", "https://")):
        url = label.split(" -> ")[-1]
        stem = Path(unquote(urlsplit(url).path)).stem or urlsplit(url).hostname or "download"
    else:
        stem = "image"
    stem = _UNSAFE_NAME.sub("-", stem).strip("-.") or "image"
    return f"{stem}.p{page}" if page is not None else stem


def names_for(label: str, path: Optional[Path], output_dir: Optional[Path], page: Optional[int] = None
              ) -> OutputNames:
    """Output names for one image: in -o DIR, else beside a local input, else in the current directory."""
    directory = output_dir if output_dir is not None else (path.parent if path is not None else Path("."))
    return OutputNames(directory, base_name(label, path, page))


def check_plan(plan: OutputPlan, *, draw: bool, crop: bool) -> None:
    """Refuse the run before sending anything if any output cannot be written as asked."""
    directories = {names.directory for names in plan.names}
    if plan.document is not None:
        directories.add(plan.document.parent)
    for directory in sorted(directories, key=str):
        prepare_output_dir(directory)
    seen: set[Path] = set()
    for names in plan.names:
        key = (names.directory / names.name).resolve()
        if (draw or crop) and key in seen:  # the same name twice: one input's files would replace the other's
            clash = names.annotated() if draw else names.directory / f"{names.name}.crop-01.png"
            raise OutputError("two inputs would write the same file", where=str(clash),
                              hint="give them different names, or run them separately with -o DIR")
        seen.add(key)
        if draw:
            check_target(names.annotated(), force=plan.force, inputs=plan.inputs)
        if crop and not plan.force:
            earlier = sorted(names.directory.glob(names.crop_pattern()))
            if earlier:
                raise OutputError("crop files from an earlier run exist", where=str(earlier[0]),
                                  hint="pass --force to overwrite them, or choose another directory with -o DIR")
    if plan.document is not None:
        check_target(plan.document, force=plan.force, inputs=plan.inputs)


def write(path: Path, data: bytes, plan: OutputPlan) -> Path:
    """Write one output file atomically, refusing inputs always and existing files without --force."""
    check_target(path, force=plan.force, inputs=plan.inputs)
    return write_atomic(path, data, force=plan.force)
