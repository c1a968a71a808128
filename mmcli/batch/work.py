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
    from ..settings import GenerationOptions, MediaOptions
    from ..media.audio import AudioOptions

# What each command accepts as inputs; its keys are the commands a many-job run takes (--each, a tasks file,
# Client.each and Client.batch), listed here only.
ALLOWED = {"ask": ("image", "video", "audio"), "video": ("video",), "docqa": ("image", "pdf"), "detect": ("image", "pdf")}
COMMANDS = tuple(ALLOWED)
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
    # SamplingOptions (video; ask's video keywords from the Python API) | DocOptions (docqa) | DetectOptions | None
    task: Any = None
    given_id: Optional[str] = None  # a tasks file's own id
    line: Optional[int] = None  # where it came from in a tasks file
    copy: int = 0  # the n-th repeat of the same job in one run
    # ask: how audio inputs are cut and encoded (None: the defaults); video: its sound track is sent too
    audio: Optional["AudioOptions"] = None

    @property
    def sources(self) -> list[str]:
        """The inputs as results, manifests and progress show them: a URL without its password."""
        from ..urls import masked_url

        return [masked_url(spec) for spec in self.inputs]

    @property
    def label(self) -> str:
        """How progress and errors name this job."""
        name = ", ".join(self.sources) or "question"
        return f"line {self.line}: {name}" if self.line is not None else name


def _fields(options: Any) -> dict:
    if options is None:
        return {}
    return {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_IN_ID}


def content_digest(spec: str) -> str:
    """A digest of what an input holds: a file's bytes, else the URL (without its password, which a digest
    written in results would let anyone guess at leisure) or the data URL itself."""
    from ..urls import masked_url

    digest = hashlib.sha256()
    if os.path.isfile(spec):
        with open(spec, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    digest.update(masked_url(spec).encode("utf-8", "surrogateescape"))
    return "name:" + digest.hexdigest()


def _where(spec: str) -> str:
    """Where an input is: a file's absolute path, else the URL without its password (a digest written in
    results would let anyone guess the password at leisure)."""
    from ..urls import masked_url

    return os.path.abspath(spec) if os.path.isfile(spec) else masked_url(spec)


def fingerprint(work: Work, family: str, model: Optional[str]) -> str:
    """A hash of what the job asks: its inputs (where they are and what they hold), the prompt, the model
    and every option that changes the request. Two files with the same bytes are two jobs."""
    key = {"command": work.command, "inputs": [[_where(s), content_digest(s)] for s in work.inputs],
           "prompt": work.prompt, "family": family, "model": model, "media": _fields(work.media),
           "generation": _fields(work.generation), "task": _fields(work.task)}
    if work.audio is not None:
        key["audio"] = _fields(work.audio)
    if work.copy:
        key["copy"] = work.copy
    text = json.dumps(key, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def job_id(work: Work, family: str, model: Optional[str] = None) -> str:
    """The job's id: the tasks line's own id, else its fingerprint (so a rerun finds it again)."""
    return work.given_id if work.given_id is not None else fingerprint(work, family, model)


def numbered_copies(works: list[Work]) -> list[Work]:
    """The same job listed again (a file given twice, a repeated tasks line) numbered, so every job's
    id is its own and still the same on the next run."""
    seen: dict[str, int] = {}
    numbered = []
    for work in works:
        key = repr((work.command, [_where(s) for s in work.inputs], work.prompt, work.media, work.generation,
                    work.task, work.audio, work.given_id))
        copy = seen.get(key, 0)
        seen[key] = copy + 1
        numbered.append(dataclasses.replace(work, copy=copy) if copy else work)
    return numbered


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
        if kind in allowed or kind == "unreadable" or _named_like(path, allowed):
            yield str(path)  # a broken file named like media is a failed job, not left out in silence


def _named_like(path: Path, allowed: tuple[str, ...]) -> bool:
    """A file named like media a command takes: if it is not what its name says, it is a failed job."""
    from ..media.sniff import SUFFIXES

    return any(path.suffix.lower() in SUFFIXES.get(kind, ()) for kind in allowed)


def pages_for(task: Any, spec: str) -> Any:
    """A task's --pages kept for a PDF and dropped for an image: `--each --pages` over a mixed folder
    means the pages of each PDF."""
    from ..media.sniff import sniff

    if getattr(task, "pages", None) is None or not os.path.isfile(spec):
        return task
    try:
        with open(spec, "rb") as handle:
            kind = sniff(handle.read(64)).kind
    except OSError:
        return task  # its job says why it cannot be read
    return dataclasses.replace(task, pages=None) if kind == "image" else task


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
    engine: str = "local"  # local | ray (mmcli.batch.ray_engine)
    ray_address: Optional[str] = None
    backend: str = "http"  # with ray: http | vllm
    engine_options: Optional["EngineOptions"] = None  # with --backend vllm: the engines Ray starts


@dataclass(frozen=True)
class EngineOptions:
    """The vLLM engines Ray starts for `--engine ray --backend vllm` (one per replica, --concurrency of them)."""

    tensor_parallel_size: int = 1
    max_model_len: Optional[int] = None
    device: str = "auto"  # auto | cuda | cpu (vLLM's CPU build on every node)
    engine_args: tuple = ()  # (key, value) pairs handed to vLLM's engine as they are
