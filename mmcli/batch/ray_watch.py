"""A watch on the Ray cluster's control store (GCS) during an `--engine ray` run: when it stops answering, the
run ends at once with mmcli's error, the lines already written kept. Without it Ray's own client waits a minute
for the GCS, then ends the process from C++ with no Python error and none of mmcli's."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Optional

MISSES = 3  # refused connections in a row (a second apart) before the cluster counts as gone


class ClusterWatch:
    """Connects to the GCS port every second; after MISSES refusals, notes why and calls on_lost with it."""

    def __init__(self, address: str, on_lost: Callable[[str], None]) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.lost: Optional[str] = None
        self.on_lost = on_lost
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="mmcli-ray-watch", daemon=True)

    def _watch(self) -> None:
        misses = 0
        while not self.stopped.wait(1.0):
            try:
                socket.create_connection((self.host, self.port), timeout=2.0).close()
                misses = 0
            except OSError as exc:
                misses += 1
                if misses >= MISSES:
                    self.lost = f"the cluster's GCS at {self.host}:{self.port} stopped answering ({exc.strerror or exc})"
                    # The driver's wait on Ray's rows is then stuck in Ray's C++ client, deaf to signals:
                    # the run is ended from here (the lines written are whole: each is flushed as it comes).
                    self.on_lost(self.lost)
                    return

    def stop(self) -> None:
        """No more watching (the run is over)."""
        self.stopped.set()


def watch_cluster(ray: Any, on_lost: Callable[[str], None]) -> Optional[ClusterWatch]:
    """A started watch on the cluster this process joined, or None when its GCS address is not known."""
    try:
        address = ray.get_runtime_context().gcs_address
    except AttributeError:
        return None
    if not address or ":" not in address:
        return None
    watch = ClusterWatch(address, on_lost)
    watch.thread.start()
    return watch
