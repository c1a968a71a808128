"""A piece of work in a many-job run: which command, which inputs, which prompt and options; and its id."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..errors import UsageError

if TYPE_CHECKING:
    from ..config import GenerationOptions, MediaOptions

# What each command accepts as inputs.
ALLOWED = {"ask": ("image", "video"), "video": ("video",), "docqa": ("image", "pdf"), "detect": ("image", "pdf")}
# Task options that change what is written, not what is asked: left out of the job id.
NOT_IN_ID = {"draw", "output_dir", "format", "strict", "crop", "force", "password_env", "max_pages", "stream"}


@dataclass(frozen=True)
class Work:
    """One job of a run: a command over some inputs with a prompt; `task` holds the command's own options."""

    command: str  # ask | video | docqa | detect
    inputs: tuple[str, ...]
    prompt: str
    media: "MediaOptions"
    generation: "GenerationOptions"
    task: Any = None  # SamplingOptions (video) | DocOptions (docqa) | DetectOptions (detect) | None
    given_id: Optional[str] = None  # a tasks file's own id
    line: Optional[int] = None  # where it came from in a tasks file

    @property
    def label(self) -> str:
        """How progress and errors name this job."""
        name = ", ".join(self.inputs) or "question"
        return f"line {self.line}: {name}" if self.line is not None else name


def _fields(options: Any) -> dict:
    if options is None:
        return {}
    return {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_IN_ID}


def content_digest(spec: str) -> str:
    """A digest of what an input holds: a file's bytes, else the URL or data URL itself."""
    digest = hashlib.sha256()
    if os.path.isfile(spec):
        with open(spec, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    digest.update(spec.encode("utf-8", "surrogateescape"))
    return "name:" + digest.hexdigest()


def job_id(work: Work, family: str) -> str:
    """The job's id: a hash of the inputs' content, the prompt and every option that changes the request."""
    if work.given_id is not None:
        return work.given_id
    key = {"command": work.command, "inputs": [content_digest(s) for s in work.inputs], "prompt": work.prompt,
           "family": family, "media": _fields(work.media), "generation": _fields(work.generation),
           "task": _fields(work.task)}
    text = json.dumps(key, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def expand(specs: list[str], recursive: bool, allowed: tuple[str, ...]) -> list[str]:
    """Each input of --each: a directory becomes its media files (sorted; subdirectories with --recursive)."""
    found: list[str] = []
    for spec in specs:
        if spec == "-":
            raise UsageError("--each cannot read standard input", hint="name the files, or a directory of them")
        if os.path.isdir(spec):
            found.extend(_media_files(Path(spec), recursive, allowed))
        else:
            found.append(spec)
    if not found:
        raise UsageError("no inputs to run", "the directories hold no " + " or ".join(allowed) + " files"
                         if specs else "no inputs given", hint="pass files or directories with media in them"
                         + ("" if recursive else "; --recursive descends into subdirectories"))
    return found


def _media_files(folder: Path, recursive: bool, allowed: tuple[str, ...]) -> Iterator[str]:
    from ..media.sniff import sniff

    entries = sorted(folder.rglob("*") if recursive else folder.iterdir())
    for path in entries:
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue  # hidden files and folders are not the user's media
        try:
            with open(path, "rb") as handle:
                kind = sniff(handle.read(64)).kind
        except OSError:
            kind = "unreadable"  # kept: its own job reports why it cannot be read
        if kind in allowed or kind == "unreadable":
            yield str(path)


@dataclass(frozen=True)
class BatchFlags:
    """How a many-job run goes: its own options (--each, --concurrency, -o, --retry-failed, ...)."""

    each: bool = False
    concurrency: Optional[int] = None
    output: Optional[Path] = None  # results.jsonl; None: JSON lines on standard output
    retry_failed: bool = False
    recursive: bool = False
    export: Optional[str] = None  # openai-batch
    export_path: Optional[Path] = None
    batch_max_mb: float = 100.0
    table: Optional[str] = None  # --format csv|jsonl: a table of the answers on stdout (with --schema)
