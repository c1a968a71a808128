"""The flow of `mmcli embed`: inputs checked, outputs checked, endpoint found, then batches sent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError
from .jobs import EmbedOptions

if TYPE_CHECKING:
    from ..config import CommonOptions
    from ..flow import Started
    from ..render import Output
    from .index import Index
    from .presets import Preset


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


def choose_preset(flag: Optional[str], index: Optional["Index"], model: Optional[str]) -> "Preset":
    """The flag's preset, else the index's, else the one the model id suggests."""
    from .presets import get_preset, guess_preset

    if flag:
        return get_preset(flag)
    if index is not None:
        return get_preset(index.preset)
    return guess_preset(model)


def run_embed(args: EmbedArgs, opts: "CommonOptions") -> None:
    """Run `mmcli embed` from its arguments and the shared options."""
    from ..flow import connect, open_inputs
    from ..media.document import select_pages
    from ..media.pdf import read_password
    from ..render import Output
    from .index import open_index
    from .output import check_output
    from .sources import expand_folders

    check_args(args)
    if args.preset:
        choose_preset(args.preset, None, None)  # an unknown name is a usage error before anything else
    out = Output(json_mode=opts.output.json)
    opened = open_inputs(expand_folders(args.inputs), opts, out, allowed=("image", "pdf"))
    selected = select_pages(opened.checked, args.pages, read_password(args.password_env), args.max_pages) \
        if opened.checked else []
    check_output(args.fmt, args.output, args.force, [c.source.path for c in opened.checked if c.source.path])
    existing = open_index(args.index) if args.index is not None else None
    started = connect(opened, opts, out)
    preset = choose_preset(args.preset, existing, started.ctx.target.model)
    embed_opts = EmbedOptions(preset, args.batch_size, args.pages, args.password_env, args.max_pages)
    if args.index is not None:
        return _into_index(args, started, selected, existing, embed_opts, out, opts.output.dry_run)
    stream = _stream(started, selected, args.texts, embed_opts)
    if opts.output.dry_run:
        from .run import show_dry_run

        return show_dry_run(started.runner, stream, preset, out)
    _to_output(args, started, selected, embed_opts, stream, out)


def _stream(started: "Started", selected: list, texts: list[str], opts: EmbedOptions, hashes=None):
    from .run import batch_stream, job_stream

    return batch_stream(job_stream(selected, texts, opts.preset, started.ctx, hashes), opts.batch_size)


def _to_output(args: EmbedArgs, started: "Started", selected: list, opts: EmbedOptions, stream, out: "Output") -> None:
    from ..runner import RunStopped
    from .run import count_jobs, embed_all

    records: list[dict] = []
    total = count_jobs(selected, args.texts)

    def sink(result, vector, rec) -> None:
        if args.output is None:
            out.json_line(rec)
        else:
            records.append(rec)

    try:
        embed_all(started.runner, stream, total, opts.batch_size, opts.preset, out, sink)
    except RunStopped as stopped:
        if args.output is not None and records:
            _write(args, records, started, opts.preset)
            out.warn(f"wrote the {len(records)} of {total} vector(s) made before the run stopped to {args.output}")
        raise stopped.cause from None
    if args.output is not None:
        _write(args, records, started, opts.preset)
        out.status(f"wrote {len(records)} vector(s) to {args.output}")


def _write(args: EmbedArgs, records: list[dict], started: "Started", preset: "Preset") -> None:
    from .output import write_jsonl, write_npy

    if args.fmt == "npy":
        meta = {"model": started.ctx.target.model, "preset": preset.name, "normalized": preset.normalize}
        write_npy(args.output, records, meta, args.force)
    else:
        write_jsonl(args.output, records, args.force)


def _only_new(selected: list, index: "Index") -> tuple[list, dict, int]:
    """The pages not yet in the index with the same contents, their files' hashes, and how many were skipped."""
    from .sources import content_hash

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


def _into_index(args: EmbedArgs, started: "Started", selected: list, existing: Optional["Index"],
                opts: EmbedOptions, out: "Output", dry_run: bool) -> None:
    from ..runner import RunStopped
    from .index import Index, check_compatible, gone, save, updated
    from .run import count_jobs, embed_all, index_entry, show_dry_run

    model = started.ctx.target.model
    if existing is not None:
        check_compatible(existing, model, opts.preset.name, "add to the index")
    index = existing or Index(args.index, model or "", opts.preset.name)
    selected, hashes, skipped = _only_new(selected, index)
    stream = _stream(started, selected, [], opts, hashes)
    if dry_run:
        out.status(f"{skipped} page(s) already in the index would be skipped")
        return show_dry_run(started.runner, stream, opts.preset, out)
    entries: list[dict] = []
    vectors: list[list[float]] = []

    def sink(result, vector, rec) -> None:
        if result.job.meta.path:
            result.job.meta.path = str(Path(result.job.meta.path).resolve())
        entries.append(index_entry(result, index))
        vectors.append(vector)

    try:
        embed_all(started.runner, stream, count_jobs(selected, []), opts.batch_size, opts.preset, out, sink)
    except RunStopped as stopped:
        if entries:
            save(updated(index, entries, vectors))
            out.warn(f"kept the {len(entries)} vector(s) made before the run stopped in {args.index}")
        raise stopped.cause from None
    removed = sum(gone(e) for e in index.entries)
    final = updated(index, entries, vectors)
    save(final)
    out.status(f"index {args.index}: {len(entries)} added, {skipped} unchanged skipped, "
               + (f"{removed} removed (their files are gone), " if removed else "") + f"{len(final.entries)} in all")
