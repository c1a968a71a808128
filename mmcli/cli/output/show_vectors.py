"""What `mmcli embed` and `mmcli search` show and write while the driver runs them: vectors as JSON lines or
files, an index updated, a table of matches. The values come from the tasks' own finish (mmcli.tasks.embed.task,
mmcli.tasks.embed.search); these only present them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

from mmcli.core.driver import Presenter

if TYPE_CHECKING:
    from mmcli.events import Steps
    from mmcli.core.job import Job
    from .render import Output
    from mmcli.core.runner import Result, Runner
    from mmcli.tasks.embed.task import EmbedArgs
    from mmcli.tasks.embed.search import Matches, SearchPlanned
    from mmcli.tasks.embed.task import Embedded, EmbedPlanned, EmbedSelection


class EmbedSteps(Presenter):
    """Progress over the batches, and the check of each batch's token count against the plan."""

    def __init__(self, out: "Output") -> None:
        super().__init__(out)
        self.out = out
        self.steps: Optional["Steps"] = None
        self.batch, self.size, self.first = -1, 0, False

    def dry_run(self, runner: "Runner", planned: "EmbedPlanned") -> None:
        """The preset's conventions and every request's plan."""
        from mmcli.tasks.embed.batches import show_dry_run

        show_dry_run(runner, planned.batches, planned.preset, self.out)

    def begin(self, batch: list["Job"], planned: "EmbedPlanned") -> None:
        """A batch is about to be sent."""
        if self.steps is None:
            self.steps = self.out.steps(max(1, math.ceil(planned.total / planned.batch_size)), "embedding")
            self.steps.__enter__()
        self.batch, self.size, self.first = self.batch + 1, len(batch), True
        self.steps.begin(f"{len(batch)} item(s): {batch[0].label}" + (" ..." if len(batch) > 1 else ""))

    def done(self, result: "Result", planned: "EmbedPlanned") -> None:
        """The batch came back: one step done; a server that counted less than was planned is told once."""
        if not self.first:
            return
        from mmcli.tasks.common import check_result

        self.first = False
        self.steps.advance()
        if result.verified is False:
            self.close()
            check_result(result, self.out)

    def close(self) -> None:
        """Remove the progress bar (before anything else is printed)."""
        if self.steps is not None:
            self.steps.close()


class VectorLines(EmbedSteps):
    """embed without --index: each vector as a JSON line as it comes, or every vector in one file at the end."""

    def __init__(self, out: "Output", args: "EmbedArgs") -> None:
        super().__init__(out)
        self.args = args
        self.normalized = False

    def before_connect(self, selection: "EmbedSelection") -> None:
        """The output file can be written (and is not an input), before any server is asked."""
        from mmcli.tasks.embed.sinks import check_output

        check_output(self.args.fmt, self.args.output, self.args.force,
                     [s.source.path for s in selection.selected if s.source.path])

    def done(self, result: "Result", planned: "EmbedPlanned") -> None:
        """Without -o, the vector's line now."""
        from mmcli.tasks.embed.task import vector_record

        super().done(result, planned)
        if self.args.output is None:
            self.out.json_line(vector_record(result, planned.preset, self.batch, self.size))

    def finished(self, value: "Embedded", planned: "EmbedPlanned") -> None:
        """-o: every vector written at once."""
        self.close()
        self.normalized = planned.preset.normalize
        if self.args.output is not None:
            self._write(value)
            self.out.status(f"wrote {len(value.records)} vector(s) to {self.args.output}")

    def stopped(self, value: "Embedded", planned: "EmbedPlanned", cause: BaseException) -> None:
        """-o: the vectors made before the run stopped are written."""
        self.close()
        self.normalized = planned.preset.normalize
        if self.args.output is not None and value.records:
            self._write(value)
            self.out.warn(f"wrote the {len(value.records)} of {planned.total} vector(s) made before the run stopped "
                          f"to {self.args.output}")

    def _write(self, value: "Embedded") -> None:
        from mmcli.tasks.embed.sinks import write_jsonl, write_npy

        if self.args.fmt == "npy":
            meta = {"model": value.model, "preset": value.preset, "normalized": self.normalized}
            write_npy(self.args.output, value.records, meta, self.args.force)
        else:
            write_jsonl(self.args.output, value.records, self.args.force)


class IndexUpdate(EmbedSteps):
    """embed --index: the vectors added to the index at the end (or those made before the run stopped)."""

    def dry_run(self, runner: "Runner", planned: "EmbedPlanned") -> None:
        """How many pages would be skipped, then the plans."""
        self.out.status(f"{planned.skipped} page(s) already in the index would be skipped")
        super().dry_run(runner, planned)

    def finished(self, value: "Embedded", planned: "EmbedPlanned") -> None:
        """The index saved, and what changed in it."""
        from mmcli.tasks.embed.index import gone

        self.close()
        removed = sum(gone(e) for e in planned.index.entries)
        final = _save(value, planned, self.out)
        self.out.status(f"index {planned.index.folder}: {len(value.records)} added, {planned.skipped} unchanged "
                        "skipped, " + (f"{removed} removed (their files are gone), " if removed else "")
                        + f"{len(final.entries)} in all")

    def stopped(self, value: "Embedded", planned: "EmbedPlanned", cause: BaseException) -> None:
        """What was made is kept in the index."""
        self.close()
        if value.records:
            _save(value, planned, self.out)
            self.out.warn(f"kept the {len(value.records)} vector(s) made before the run stopped in "
                          f"{planned.index.folder}")


def _save(value: "Embedded", planned: "EmbedPlanned", out: "Output"):
    from pathlib import Path

    from mmcli.tasks.embed.index import add
    from mmcli.tasks.embed.batches import index_entry

    entries = []
    for result in value.results:
        if result.job.meta.path:
            result.job.meta.path = str(Path(result.job.meta.path).resolve())
        entries.append(index_entry(result, planned.thumbnails))
    return add(planned.index, entries, [record["embedding"] for record in value.records], planned.thumbnails,
               waiting=out.status)


class SearchView(Presenter):
    """search on the CLI: the matches as a table or one JSON object; --open writes a contact sheet."""

    def __init__(self, out: "Output", open_sheet: bool) -> None:
        super().__init__(out)
        self.out, self.open_sheet = out, open_sheet

    def dry_run(self, runner: "Runner", planned: "SearchPlanned") -> None:
        """The preset's conventions and the query's request."""
        from mmcli.tasks.embed.batches import show_dry_run

        show_dry_run(runner, iter([planned.jobs]), planned.preset, self.out)

    def finished(self, value: "Matches", planned: "SearchPlanned") -> None:
        """The contact sheet (--open), then the matches."""
        if self.open_sheet:
            write_sheet(value, self.out)
        show_matches(value, self.out)


SHEET = "matches.png"


def write_sheet(value: "Matches", out: "Output") -> None:
    """The contact sheet of the matches, in the index's folder."""
    from pathlib import Path

    from mmcli.files import write_atomic
    from mmcli.tasks.embed.sheet import contact_sheet

    folder = Path(value.index)
    path = folder / SHEET
    write_atomic(path, contact_sheet(folder, value.matches), force=True)  # the index's own file, remade each search
    out.status(f"contact sheet: {path}")


def show_matches(value: "Matches", out: "Output") -> None:
    """The matches as one JSON object (--json) or a table."""
    from mmcli.tasks.embed.search import fields

    if out.json_mode:
        out.emit_json(fields(value))
        return
    from rich.table import Table

    from mmcli.terminal import plain

    table = Table(title=plain(f"{len(value.matches)} of {value.rows} in {value.index}"), title_justify="left")
    for column in ("#", "score", "source", "page"):
        table.add_column(column, justify="right" if column in ("#", "score", "page") else "left")
    for m in value.matches:
        table.add_row(str(m["rank"]), f"{m['score']:.4f}", plain(m["source"]), "" if m["page"] is None else str(m["page"]))
    out.console().print(table)
