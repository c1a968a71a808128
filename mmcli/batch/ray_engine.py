"""`--engine ray`: a many-file run handed to Ray Data. The driver lists the jobs (paths, never images);
Ray workers prepare, send and finish each job with the code of a local run (mmcli.batch.ray_workers);
the lines come back to the results file (resumed as a local run resumes it), or Ray writes them as
Parquet files into a folder or any path Ray can write (`-o NAME.parquet`).

Ray is imported (mmcli.batch.ray_start) only when `--engine ray` is given.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from .work import BatchFlags, Work

if TYPE_CHECKING:
    from ..errors import MmcliError
    from ..settings import CommonOptions
    from ..events import Display
    from .progress import Progress
    from .results import Sink


@dataclass
class Outcome:
    """What mmcli.batch.run.finish needs to sum up a run: the results and the counts."""

    sink: "Sink"
    progress: "Progress"


def run_on_ray(works: list[Work], opts: "CommonOptions", flags: BatchFlags, out: "Display", title: str,
               local: tuple, environ: Optional[Mapping[str, str]] = None, protected: tuple = ()) -> Outcome:
    """Run every job on Ray Data and write a line per job; exit 8 when any job failed. `local` is the local
    run's (Batch, finish): its per-job code runs in the workers, its summary ends the run."""
    from ..settings import resolve_settings
    from .guard import input_files, refuse_reading_files
    from .ray_start import import_ray, start_ray
    from .ray_watch import watch_cluster
    from .servers import connect_first, refuse_keyless, targets_for

    batch_class, finish = local
    ray = import_ray()
    settings = resolve_settings(opts.endpoint, environ)
    parquet = parquet_location(flags.output)
    if parquet is None:
        refuse_reading_files(flags.output, [*input_files(works), *protected])
    if flags.backend == "vllm":
        from .ray_vllm import engine_job

        make_job = engine_job(ray, works, settings, flags, out)
    else:
        target = connect_first(settings, opts.endpoint, out, environ)
        targets = targets_for(target, opts.endpoint, environ)
        refuse_keyless(targets)
        concurrency = flags.concurrency or settings.endpoint.profile.default_concurrency(settings.endpoint.base_url)
        make_job = lambda: RayJob(ray, works, targets, flags, concurrency, batch_class)  # noqa: E731
    started = start_ray(ray, flags.ray_address, environ)
    watch = None
    try:
        job = make_job()  # the engine mode checks the cluster's resources here
        watch = watch_cluster(ray, lambda why: abandon(workers_failed(None, flags, why), out))
        try:
            outcome, interrupted = (job.write_parquet(parquet, out, title) if parquet is not None
                                    else job.write_lines(out, title))
        except ray.exceptions.RayError as exc:
            raise workers_failed(exc, flags) from None
    finally:
        if watch is not None:
            watch.stop()
        if started:
            ray.shutdown()
    finish(outcome, flags, out, interrupted)
    return outcome


def workers_failed(exc: Optional[BaseException], flags: BatchFlags, lost: Optional[str] = None) -> "MmcliError":
    """Ray's workers stopped (mmcli missing on a node, a worker killed, the cluster gone, a bug): one error with
    Ray's last word; the lines already written stay, and a rerun does the rest."""
    from ..errors import JobsFailed

    said = [line.strip() for line in str(exc or "").splitlines() if line.strip()]
    return JobsFailed("Ray's workers stopped", lost or (said[-1][:300] if said else type(exc).__name__),
                      where=str(flags.output or ""),
                      hint="every node needs this mmcli installed (the same version) and the inputs at the same "
                           "paths; the lines written are kept: run the same command again to finish")


def abandon(error: "MmcliError", out: "Display") -> None:
    """The cluster is gone and the driver stuck in Ray's client: the error said, the process ended at once
    (Ray's client would end it a minute later with none of mmcli's words)."""
    out.stderr_block(f"mmcli: error: {error.message()}\nhint: {error.hint}\n")
    os._exit(int(error.exit_code))


def parquet_location(output: Optional[Path]) -> Optional[str]:
    """Where Ray writes Parquet files (a folder, or a URI such as s3://...), when -o names one."""
    if output is None or not str(output).endswith(".parquet"):
        return None
    text = str(output)
    uri = re.match(r"^([a-z][a-z0-9+.-]*):/+(.*)$", text)
    if uri and len(uri.group(1)) > 1:  # a path option folds `s3://b` to `s3:/b`: put the slashes back
        return f"{uri.group(1)}://{uri.group(2)}"
    return os.path.abspath(text)  # Ray's workers do not share the driver's working folder


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
        from .ray_workers import PER_WORKER, Answerer

        quiet_data(self.ray)
        target = self.targets[0]
        cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        rows = [{"work": pickle.dumps(work)} for work in self.works]
        per_batch = min(PER_WORKER, self.concurrency)
        # A block comes back to the driver only when all its rows are answered: one batch per block, so each
        # line is written (and kept on Ctrl-C or a lost cluster) a batch after it is answered.
        blocks = max(1, math.ceil(len(rows) / per_batch))
        # No more workers than blocks: an idle worker costs a start-up and makes Ray Data warn.
        workers = max(1, min(math.ceil(self.concurrency / PER_WORKER), cpus, blocks))
        kept = kept_ids(previous)
        return self.ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            Answerer, batch_size=per_batch, num_cpus=1,
            compute=self.ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"batch_class": self.batch_class, "targets": self.targets, "family": target.family.name, "model": target.model,
                                   "retry_failed": self.flags.retry_failed, "previous": kept})

    def write_lines(self, out: "Display", title: str) -> tuple[Outcome, bool]:
        """The rows, as they come, written to the results file (or standard output) as a local run writes."""
        from .progress import Progress, Tally
        from .results import open_sink

        sink = open_sink(self.flags.output, out)
        progress = Progress(out, Tally(len(self.works)), title)
        interrupted = False
        try:
            rows = self.dataset(sink.previous).iter_rows()
            progress.start()
            try:
                for row in rows:
                    shown(row, sink, progress)
            except KeyboardInterrupt:
                interrupted = True  # every line written is whole; a rerun does the rest
            finally:
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
        ds = self.dataset(read_previous(self.ray, location)).materialize()
        progress.start()
        try:
            for row in ds.select_columns(["status", "label", "line"]).iter_rows():
                shown(row, sink, progress)
        finally:
            progress.close()
        from ray.data.expressions import col

        # An expression, not a Python function: Ray warns about (and runs slower) a function filter.
        ds.filter(expr=col("status").is_in(["done", "failed"])).drop_columns(["label"]).write_parquet(location)
        return Outcome(sink, progress), False


def shown(row: dict, sink: Any, progress: "Progress") -> None:
    """One row: counted as skipped, or its line written and counted."""
    status = row["status"]
    if status in ("skipped", "failed-before"):
        progress.skipped(failed_before=status == "failed-before")
        return
    record = json.loads(row["line"])
    if sink.write(record):
        progress.record(row["label"], record)
