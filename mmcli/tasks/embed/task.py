"""embed as a task of the one driver: pages chosen, the preset and the index settled once the model is known,
batches built as their turn comes, and a pure finish that turns results into records (one per vector)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from mmcli.errors import UsageError
from ..planned import Planned
from mmcli.presets import choose_preset

if TYPE_CHECKING:
    from mmcli.core.inputs import CheckedInput
    from mmcli.core.job import Job
    from mmcli.core.runner import Result
    from ..common import Context
    from .index import Index
    from mmcli.presets import Preset


@dataclass
class EmbedArgs:
    """embed's own arguments, as given."""

    inputs: list[str]
    texts: list[str]
    preset: Optional[str] = None
    batch_size: int = 8
    fmt: str = "jsonl"
    output: Optional[Path] = None
    force: bool = False
    index: Optional[Path] = None
    pages: Optional[str] = None
    password_env: Optional[str] = None
    max_pages: int = 50


def check_args(args: EmbedArgs) -> None:
    """Refuse combinations that cannot work, before any file is opened."""
    if not args.inputs and not args.texts:
        raise UsageError("nothing to embed", hint='give images, PDFs or folders, or --text "words"')
    if args.index is not None:
        if args.output is not None or args.fmt != "jsonl":
            raise UsageError("--index writes its own files", "it does not take -o or --format",
                             hint="run mmcli embed twice: once with --index DIR, once with -o FILE")
        if args.texts:
            raise UsageError("--index holds images and pages, not texts",
                             hint='search it with a text instead: mmcli search "words" --index DIR')
    if any(not t.strip() for t in args.texts):
        raise UsageError("--text is empty", hint='give the words to embed: --text "a red car"')


@dataclass
class EmbedSelection:
    """The pages of every input, and the index the vectors go into (as found on disk), before any server is asked."""

    selected: list
    existing: Optional["Index"] = None


@dataclass
class EmbedPlanned(Planned):
    """embed's plan: the preset, the batches (built lazily, and let go once sent), and the index they go into."""

    preset: Optional["Preset"] = None
    model: Optional[str] = None  # the endpoint's model
    batches: Iterator[list["Job"]] = field(default_factory=lambda: iter(()))
    total: int = 0  # how many vectors the run makes
    batch_size: int = 8
    index: Optional["Index"] = None  # --index: the index the vectors are added to
    skipped: int = 0  # --index: pages already in it with the same contents
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # --index: name -> small JPEG, made as pages are sent


@dataclass
class Embedded:
    """What an embed run made: one record per vector (source, page, kind, dims, embedding, usage, batch), in order;
    `results` are the Results they came from (the index makes thumbnails from them)."""

    model: Optional[str]
    preset: str
    records: list[dict]
    results: list["Result"]
    warnings: list[str] = field(default_factory=list)


def embed_inputs(inputs: list) -> list:
    """Folders named as inputs replaced by their images and PDFs; other inputs (URLs, bytes, images) as given."""
    from .folders import expand_folders

    expanded: list = []
    for spec in inputs:
        if isinstance(spec, (str, os.PathLike)):
            expanded += expand_folders([os.fspath(spec)])
        else:
            expanded.append(spec)
    return expanded


def choose(checked: list["CheckedInput"], args: "EmbedArgs") -> EmbedSelection:
    """Every PDF's pages chosen, and the index (when there is one) opened."""
    from mmcli.media.document import select_pages
    from mmcli.media.pdf import read_password
    from .index import open_index

    # Each image is its own vector, sent in batches: only PDF pages count against --max-pages.
    selected = select_pages(checked, args.pages, read_password(args.password_env), args.max_pages,
                            count_images=False) if checked else []
    return EmbedSelection(selected, open_index(args.index) if args.index is not None else None)


def plan(selection: EmbedSelection, args: "EmbedArgs", ctx: "Context") -> EmbedPlanned:
    """The preset (the flag's, the index's, or the model's), the index's checks, and the batches to send."""
    from .index import Index, check_compatible
    from .batches import batch_stream, count_jobs, job_stream

    model = ctx.target.model
    preset = choose_preset(args.preset, selection.existing, model)
    selected, texts, hashes, skipped, index = selection.selected, list(args.texts), None, 0, None
    if args.index is not None:
        if selection.existing is not None:
            check_compatible(selection.existing, model, preset.name, "add to the index")
        index = selection.existing or Index(args.index, model or "", preset.name)
        selected, hashes, skipped = only_new(selected, index)
        texts = []
    batches = batch_stream(job_stream(selected, texts, preset, ctx, hashes), args.batch_size)
    return EmbedPlanned([], "", preset=preset, model=model, batches=batches, total=count_jobs(selected, texts),
                        batch_size=args.batch_size, index=index, skipped=skipped)


def send(runner, batch: list["Job"], planned: EmbedPlanned) -> list["Result"]:
    """One request holding the batch's conversations; one Result with its vector per job. Once sent, the request
    body and the images are let go (an index keeps a thumbnail of each): the run holds vectors, not media."""
    from .batches import keep_thumbnail

    results = runner.embed(batch, planned.preset)
    for result in results:
        if planned.index is not None:
            keep_thumbnail(result, planned.thumbnails)
    if results:
        results[0].plan.let_go()  # the batch's one plan, its items being the jobs' own
    return results


def vector_record(result: "Result", preset: "Preset", batch: int, size: int) -> dict:
    """One record: the vector finished as the preset says (normalised or not), where it comes from, the usage."""
    from .jobs import finish_vector
    from .sinks import record

    vector = finish_vector(result.vector or [], preset)
    return record(result, vector, batch, size)


def finish(planned: EmbedPlanned, results: list["Result"], warnings: list[str]) -> Embedded:
    """The records of every vector that came back, in order (a stopped run's failed batch has none)."""
    made = [r for r in results if r.ok and r.vector is not None]
    records, batch, previous = [], -1, None
    sizes: dict[int, int] = {}
    for result in made:
        sizes[id(result.plan)] = sizes.get(id(result.plan), 0) + 1
    for result in made:
        if result.plan is not previous:  # the jobs of one request share its plan
            batch, previous = batch + 1, result.plan
        records.append(vector_record(result, planned.preset, batch, sizes[id(result.plan)]))
    return Embedded(planned.model, planned.preset.name if planned.preset else "", records, made, list(warnings))


def fields(value: Embedded) -> dict:
    """model, preset, and the records (the JSON lines `mmcli embed` writes)."""
    return {"model": value.model, "preset": value.preset, "vectors": list(value.records)}


def only_new(selected: list, index: "Index") -> tuple[list, dict, int]:
    """The pages not yet in the index with the same contents, their files' hashes, and how many were skipped."""
    from .folders import content_hash

    kept, hashes, skipped = [], {}, 0
    for entry in selected:
        sha = content_hash(entry.source.read())
        hashes[entry.source.label] = sha
        path = str(entry.source.path.resolve()) if entry.source.path is not None else entry.source.label
        pages = [p for p in entry.pages if not index.has(path, p if entry.pdf is not None else None, sha)]
        skipped += len(entry.pages) - len(pages)
        if pages:
            entry.pages = pages
            kept.append(entry)
    return kept, hashes, skipped
