"""Where detect's files go: named and checked before anything is sent, written atomically afterwards.

A write that fails after the requests (a full disk) does not end the run: it is warned about and
noted, the results are still shown, and the run exits 9 at the end (`Writer.raise_if_failed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import unquote, urlsplit

from mmcli.errors import OutputError, OutputNotWritten
from mmcli.files import check_output_dir, check_target, is_input, make_output_dir, write_atomic
from .labels import slug

if TYPE_CHECKING:
    from mmcli.events import Events

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
        """A glob matching every crop file of this image (and perhaps of an image named like one)."""
        return f"{_glob_escape(self.name)}.crop-[0-9][0-9]*.png"

    def is_crop(self, path: Path) -> bool:
        """Whether `path` is exactly a crop file name of this image (slugs hold no dots, names may)."""
        return re.fullmatch(re.escape(self.name) + r"\.crop-[0-9]{2,}(-[a-z0-9-]+)?\.png", path.name) is not None


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
        check_output_dir(directory)  # created only when its first file is written
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
            earlier = sorted(p for p in names.directory.glob(names.crop_pattern())
                             if names.is_crop(p) and not is_input(p, plan.inputs))
            if earlier:
                raise OutputError("crop files from an earlier run exist", where=str(earlier[0]),
                                  hint="pass --force to overwrite them, or choose another directory with -o DIR")
    if plan.document is not None:
        check_target(plan.document, force=plan.force, inputs=plan.inputs)


class Writer:
    """Writes a run's files once its answers are in: directories made at the first file, failures noted."""

    def __init__(self, plan: OutputPlan, events: "Events") -> None:
        self.plan = plan
        self.events = events
        self.failed: list[dict] = []  # {"file": path, "error": why}, in the order they failed

    def write(self, path: Path, data: bytes) -> Optional[Path]:
        """Write one file atomically; on failure warn, note it and return None (the run goes on)."""
        try:
            make_output_dir(path.parent)
            check_target(path, force=self.plan.force, inputs=self.plan.inputs)  # it may have appeared since
            return write_atomic(path, data, force=self.plan.force)
        except (OutputError, OutputNotWritten) as exc:
            why = exc.why or exc.what
            self.failed.append({"file": str(path), "error": why})
            self.events.warn(f"could not write {path}: {why}")
            return None

    def remove_stale(self, names: OutputNames, kept: list[Path], *, crops: bool, annotated: bool) -> None:
        """With --force, remove this image's crops (and annotated copy) from an earlier run not rewritten now."""
        if not self.plan.force:
            return
        stale = sorted(p for p in names.directory.glob(names.crop_pattern()) if names.is_crop(p)) if crops else []
        if annotated:
            stale.append(names.annotated())
        keep = {str(p) for p in kept}
        removed = []
        for path in stale:
            if str(path) in keep or not path.is_file() or path.is_symlink() or is_input(path, self.plan.inputs):
                continue
            try:
                path.unlink()
            except OSError as exc:  # a stale file left behind loses nothing: say so and go on
                self.events.warn(f"could not remove {path} from an earlier run: {exc.strerror or exc}")
                continue
            removed.append(path)
        if removed:
            self.events.status(f"removed {len(removed)} file(s) from an earlier run: {removed[0]}"
                               + (" ..." if len(removed) > 1 else ""))

    def raise_if_failed(self) -> None:
        """End the run with exit 9 if any file could not be written (after the results were shown)."""
        if not self.failed:
            return
        first = self.failed[0]
        more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
        raise OutputNotWritten("could not write output file", first["error"], where=first["file"] + more,
                               hint="the results above are complete; free some space or choose another "
                                    "directory with -o DIR, then run again with --force")
