"""`Client.each(..., engine="ray")` and `Client.batch(..., engine="ray")`: the jobs run on Ray Data's workers as
`--engine ray` runs them (mmcli.batch.ray_engine), each results line handed back as its batch comes in."""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Optional

if TYPE_CHECKING:
    from ..batch.progress import Tally
    from ..batch.results import Sink
    from ..batch.work import BatchFlags, Work
    from ..events import Events
    from ..settings import CommonOptions, Settings


def ray_lines(works: list["Work"], settings: "Settings", common: "CommonOptions", flags: "BatchFlags",
              feed: tuple["Sink", queue.Queue], events: "Events", title: str, environ: Optional[Mapping[str, str]],
              tallied: Callable[["Tally"], None]) -> Iterator[dict]:
    """Each job's line as Ray's workers answer it: `feed` is the sink that writes it (to the results file, when
    there is one) and the queue it then puts it on. A Ray this call started is stopped at the end; one already
    running in this process, or a cluster, is left running."""
    from ..batch.progress import Progress, Tally
    from ..batch.ray_engine import workers_failed
    from ..batch.ray_job import RayJob, arrived, shown
    from ..batch.ray_start import import_ray, start_ray, stop_ray
    from ..batch.run import Batch
    from ..batch.servers import connect_all

    sink, written = feed
    ray = import_ray()
    _, targets, concurrency = connect_all(settings, common.endpoint, events, flags.concurrency, environ)
    progress = Progress(events, Tally(len(works)), title)
    tallied(progress.tally)
    started = start_ray(ray, flags.ray_address, environ)
    rows = None
    try:
        rows = arrived(RayJob(ray, works, targets, flags, concurrency, Batch).dataset(sink.previous))
        for row in rows:
            shown(row, sink, progress)
            while not written.empty():
                yield written.get_nowait()
    except ray.exceptions.RayError as exc:
        raise workers_failed(exc, flags) from None
    finally:
        if rows is not None:
            rows.close()  # Ray Data's run stopped first: ray.shutdown() under a live iterator never returns
        if started:
            stop_ray(ray)
