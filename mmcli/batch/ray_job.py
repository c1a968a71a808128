"""The jobs of `--engine ray` as a Ray Dataset, and its rows read back by the driver: written to the results
file as they come (or standard output), or written by Ray as Parquet (`-o NAME.parquet`). The HTTP mode's
dataset is built here; the engine mode's (mmcli.batch.ray_vllm) replaces only `dataset`.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from .work import BatchFlags, Work

if TYPE_CHECKING:
    from ..events import Display
    from .progress import Progress
    from .results import Sink


@dataclass
class Outcome:
    """What mmcli.batch.run.finish needs to sum up a run: the results and the counts."""

    sink: "Sink"
    progress: "Progress"


def kept_ids(previous: dict[str, dict]) -> dict[str, dict]:
    """What the workers need of the results already written: per id, whether it failed and its fingerprint."""
    return {key: {"error": bool(line.get("error")) or None, "fingerprint": line.get("fingerprint")}
            for key, line in previous.items()}


def quiet_data(ray: Any) -> None:
    """Ray Data's own progress bars and banners stay off: mmcli shows the run's progress itself."""
    import logging

    for name in ("ray", "ray.data"):  # Ray's info lines and warnings would mix with mmcli's status lines
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False


class RayJob:
    """The jobs as a Ray Dataset, answered by workers, their rows read back by the driver."""

    def __init__(self, ray: Any, works: list[Work], targets: list, flags: BatchFlags, concurrency: int,
                 batch_class: type) -> None:
        self.ray, self.works, self.targets, self.flags = ray, works, targets, flags
        self.concurrency, self.batch_class = concurrency, batch_class

    def dataset(self, previous: dict[str, dict]) -> Any:
        """Rows of pickled jobs mapped by `Answerer` workers: `concurrency` jobs in flight in all."""
        from .ray_workers import Answerer, shares

        quiet_data(self.ray)
        target = self.targets[0]
        cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        rows = [{"work": pickle.dumps(work)} for work in self.works]
        # Each worker runs one batch at a time (Ray Data calls a worker's function once at a time), a thread per job:
        # workers x per_batch, at most `concurrency`, is what the servers see at once.
        workers, per_batch = shares(self.concurrency, cpus, len(rows))
        # A block comes back to the driver only when all its rows are answered: one batch per block, so each
        # line is written (and kept on Ctrl-C or a lost cluster) as soon as its batch is answered.
        blocks = max(1, math.ceil(len(rows) / per_batch))
        kept = kept_ids(previous)
        return self.ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            Answerer, batch_size=per_batch, num_cpus=1,
            compute=self.ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"batch_class": self.batch_class, "targets": self.targets, "family": target.family.name, "model": target.model,
                                   "retry_failed": self.flags.retry_failed, "previous": kept,
                                   "threads": per_batch})

    def write_lines(self, out: "Display", title: str) -> tuple[Outcome, bool]:
        """The rows, as they come, written to the results file (or standard output) as a local run writes."""
        from .progress import Progress, Tally
        from .results import open_sink

        sink = open_sink(self.flags.output, out)
        progress = Progress(out, Tally(len(self.works)), title)
        interrupted = False
        try:
            rows = arrived(self.dataset(sink.previous))
            progress.start()
            try:
                for row in rows:
                    shown(row, sink, progress)
            except KeyboardInterrupt:
                interrupted = True  # every line written is whole; a rerun does the rest
            finally:
                rows.close()  # Ray Data's threads told to stop now, before Ray is shut down
                progress.close()
        finally:
            sink.close()
        return Outcome(sink, progress), interrupted

    def write_parquet(self, location: str, out: "Display", title: str) -> tuple[Outcome, bool]:
        """Every job answered, then its row written by Ray as Parquet; the counts shown as a local run's."""
        from .progress import Progress, Tally
        from .ray_output import ParquetCounts, read_previous

        progress = Progress(out, Tally(len(self.works)), title)
        sink = ParquetCounts(location)
        quiet_data(self.ray)  # before the previous results are read: reading them is a Ray Data run of its own
        ds = self.dataset(read_previous(self.ray, location)).materialize()
        progress.start()
        rows = arrived(ds.select_columns(["status", "label", "line"]))
        try:
            for row in rows:
                shown(row, sink, progress)
        finally:
            rows.close()
            progress.close()
        from ray.data.expressions import col

        # An expression, not a Python function: Ray warns about (and runs slower) a function filter.
        ds.filter(expr=col("status").is_in(["done", "failed"])).drop_columns(["label"]).write_parquet(location)
        return Outcome(sink, progress), False


def arrived(ds: Any) -> Iterator[dict]:
    """The rows of each block as soon as it is answered (Ray's iter_rows holds a block back until the next one is
    ready, which would keep a batch's lines from the file, and from a Ctrl-C, for a batch's time)."""
    batches = iter(ds.iter_batches(batch_size=None, prefetch_batches=0, batch_format="pyarrow"))
    try:
        for block in batches:
            yield from block.to_pylist()
    finally:
        # Closed here, not when collected: its worker threads must be told to stop before Ray is shut down.
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def shown(row: dict, sink: Any, progress: "Progress") -> None:
    """One row: counted as skipped, or its line written and counted."""
    status = row["status"]
    if status in ("skipped", "failed-before"):
        progress.skipped(failed_before=status == "failed-before")
        return
    record = json.loads(row["line"])
    if sink.write(record):
        progress.record(row["label"], record)
