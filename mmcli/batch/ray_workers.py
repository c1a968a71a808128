"""What a Ray worker runs for `--engine ray`: the jobs of a batch of rows, each prepared, sent and finished
by the same code as a local many-file run (mmcli.batch.run's Batch), its line handed back as a row.

Nothing here imports Ray: Ray Data calls `Answerer` with a batch of rows, and the rows are plain columns.
"""

from __future__ import annotations

import json
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from .results import Sink

# The columns of a result row, in order: the job's id, how it ended, its label, and its line as JSON.
COLUMNS = ("id", "status", "label", "fingerprint", "line")
PER_WORKER = 4  # the fewest jobs a Ray worker is started for: --concurrency 8 is two workers of 4 threads


def shares(concurrency: int, cpus: int, jobs: int) -> tuple[int, int]:
    """(workers, jobs per worker) for `concurrency` jobs in flight in all, never more: a worker (one CPU) runs
    one batch at a time with a thread per job, so workers x jobs per worker is what the servers see at once."""
    workers = max(1, min(concurrency // PER_WORKER, cpus))
    # Rounded down, not up: --concurrency 6 is one worker of 6, not two of 4 (8 at the server).
    per_worker = max(1, concurrency // workers)
    # No more workers than batches of jobs: an idle worker costs a start-up and makes Ray Data warn.
    return max(1, min(workers, -(-jobs // per_worker))), per_worker


def line_row(label: str, record: dict) -> dict:
    """The row of a job answered or failed: its line as JSON."""
    return {"id": record["id"], "status": "failed" if record.get("error") else "done", "label": label,
            "fingerprint": record.get("fingerprint") or "",
            "line": json.dumps(record, ensure_ascii=False, default=str)}


def skipped_row(failed_before: bool) -> dict:
    """The row of a job already in the results: no line, only the count."""
    return {"id": "", "status": "failed-before" if failed_before else "skipped", "label": "", "fingerprint": "",
            "line": ""}


class Collected(Sink):
    """A worker's results: whole lines kept in memory until the batch's rows are returned."""

    def __init__(self, previous: dict[str, dict]) -> None:
        super().__init__()
        self.previous = previous
        self.lines: list[bytes] = []

    def _write(self, data: bytes) -> None:
        self.lines.append(data)


class Rows:
    """Stands in for the progress display in a worker: each job's end becomes a row for the driver."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[dict] = []

    def record(self, label: str, record: dict) -> None:
        """A job answered or failed: its line."""
        with self.lock:
            self.rows.append(line_row(label, record))

    def skipped(self, failed_before: bool) -> None:
        """A job already in the results: no line, only the count."""
        with self.lock:
            self.rows.append(skipped_row(failed_before))

    def note(self, message: str) -> None:
        """Nothing is shown from a worker."""


class Answerer:
    """A Ray worker: the servers, the rate-limit gate and the finished ids, kept across its batches."""

    def __init__(self, batch_class: type, targets: list, family: str, model: Optional[str], retry_failed: bool,
                 previous: dict[str, dict], threads: int = PER_WORKER) -> None:
        from .pacing import Pacer
        from .servers import Servers

        self.targets, self.family, self.model = targets, family, model
        self.retry_failed, self.previous, self.threads = retry_failed, previous, threads
        self.servers, self.pacer = Servers(targets), Pacer()
        self._batch = batch_class  # the local run's per-job code (mmcli.batch.run.Batch), used unchanged

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """Answer every job of the batch (`threads` at a time: this worker's share of --concurrency); a row each."""
        works = [pickle.loads(blob) for blob in batch["work"]]
        rows = Rows()
        run = self._batch(self.servers, self.pacer, Collected(self.previous), rows, self.retry_failed,
                          self.family, self.model)
        with ThreadPoolExecutor(max_workers=max(1, min(self.threads, len(works)))) as pool:
            for done in [pool.submit(run.handle, work) for work in works]:
                done.result()  # a bug in mmcli ends the run here, as it does locally
        return {name: [row[name] for row in rows.rows] for name in COLUMNS}
