"""`--engine ray`: a many-file run handed to Ray Data. The driver lists the jobs (paths, never images);
Ray workers prepare, send and finish each job with the code of a local run (mmcli.batch.ray_workers);
the lines come back to the results file (resumed as a local run resumes it), or Ray writes them as
Parquet files into a folder or any path Ray can write (`-o NAME.parquet`).

Ray is imported (mmcli.batch.ray_start) only when `--engine ray` is given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from .ray_job import Outcome, RayJob
from .work import BatchFlags, Work

if TYPE_CHECKING:
    from ..errors import MmcliError
    from ..settings import CommonOptions
    from ..events import Display


def run_on_ray(works: list[Work], opts: "CommonOptions", flags: BatchFlags, out: "Display", title: str,
               local: tuple, environ: Optional[Mapping[str, str]] = None, protected: tuple = ()) -> Outcome:
    """Run every job on Ray Data and write a line per job; exit 8 when any job failed. `local` is the local
    run's (Batch, finish): its per-job code runs in the workers, its summary ends the run."""
    from contextlib import ExitStack

    from ..settings import resolve_settings
    from .guard import input_files, refuse_holding, refuse_reading_files
    from .ray_output import folder_locked
    from .ray_start import import_ray

    refuse_base_url(opts, flags)
    batch_class, finish = local
    ray = import_ray()
    settings = resolve_settings(opts.endpoint, environ)
    parquet = parquet_location(flags.output)
    if parquet is None:
        refuse_reading_files(flags.output, [*input_files(works), *protected])
    elif "://" not in parquet:
        refuse_holding(Path(parquet), [*input_files(works), *protected])
    if flags.backend == "vllm":
        from .ray_vllm import engine_job

        make_job = engine_job(ray, works, settings, flags, out)
    else:
        from .servers import connect_all

        _, targets, concurrency = connect_all(settings, opts.endpoint, out, flags.concurrency, environ)
        make_job = lambda: RayJob(ray, works, targets, flags, concurrency, batch_class)  # noqa: E731
    with ExitStack() as held:
        if parquet is not None:
            held.enter_context(folder_locked(parquet))  # a second run into it is refused before Ray starts
        outcome, interrupted = run_job(ray, make_job, parquet, flags, out, title, environ)
    finish(outcome, flags, out, interrupted)
    return outcome


def run_job(ray: Any, make_job: Callable[[], RayJob], parquet: Optional[str], flags: BatchFlags, out: "Display",
            title: str, environ: Optional[Mapping[str, str]]) -> tuple[Outcome, bool]:
    """Ray started (or joined), the job built and run, Ray let go; SIGTERM ends it as Ctrl-C does."""
    from ..interrupts import term_as_interrupt
    from .ray_start import start_ray, stop_ray
    from .ray_watch import watch_cluster

    with term_as_interrupt() as again:
        started = start_ray(ray, flags.ray_address, environ)
        again()  # ray.init put Ray's own SIGTERM handler (sys.exit, under its C++ crash dump) in place of mmcli's
        watch = None
        try:
            job = make_job()  # the engine mode checks the cluster's resources here
            watch = watch_cluster(ray, lambda why: abandon(workers_failed(None, flags, why), out))
            try:
                return job.write_parquet(parquet, out, title) if parquet is not None else job.write_lines(out, title)
            except ray.exceptions.RayError as exc:
                raise workers_failed(exc, flags) from None
        finally:
            if watch is not None:
                watch.stop()
            if started:
                stop_ray(ray)


def refuse_base_url(opts: "CommonOptions", flags: BatchFlags) -> None:
    """--backend vllm sends nothing to a URL (Ray starts the engines): a --base-url given with it is refused, not
    ignored, before any job is prepared or Ray started."""
    from ..errors import UsageError

    given = opts.endpoint.base_urls or ((opts.endpoint.base_url,) if opts.endpoint.base_url else ())
    if flags.backend == "vllm" and given:
        raise UsageError("--base-url does not work with --backend vllm", "Ray starts vLLM engines of --model itself "
                         "and sends nothing to a URL", where=", ".join(given),
                         hint="leave out --base-url (and unset MMCLI_BASE_URL) to run the engines on Ray, or leave "
                              "out --backend vllm to send the jobs to that server over HTTP")


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


