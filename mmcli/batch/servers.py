"""Several servers for one run: jobs go to the least busy; a failing server is left out for a while."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:
    from ..settings import EndpointFlags
    from ..core.endpoint import Target

BENCH_SECONDS = 30.0  # how long a server that failed is left out before it gets jobs again


@dataclass
class Server:
    """One server of the run and how it is doing."""

    target: "Target"
    outstanding: int = 0
    benched_until: float = 0.0
    done: int = 0


class Servers:
    """The servers a run shares its jobs among (often just one)."""

    def __init__(self, targets: list["Target"], bench_seconds: float = BENCH_SECONDS) -> None:
        self.servers = [Server(t) for t in targets]
        self.bench_seconds = bench_seconds
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.servers)

    def acquire(self, avoid: Optional[Server] = None) -> Server:
        """The server with the fewest requests outstanding among those not left out (and not `avoid`)."""
        with self._lock:
            now = time.monotonic()
            pool = [s for s in self.servers if s is not avoid] or self.servers
            ready = [s for s in pool if s.benched_until <= now]
            if ready:
                chosen = min(ready, key=lambda s: (s.outstanding, s.done))
            else:  # every server is left out: try the one back soonest rather than fail the job
                chosen = min(pool, key=lambda s: s.benched_until)
            chosen.outstanding += 1
            return chosen

    def release(self, server: Server, failed: bool) -> None:
        """A job on `server` is over; a failed server is left out for `bench_seconds`."""
        with self._lock:
            server.outstanding -= 1
            if failed:
                server.benched_until = time.monotonic() + self.bench_seconds
            else:
                server.done += 1


def server_urls(flags: "EndpointFlags", target: "Target") -> list[str]:
    """Every base URL of the run: every --base-url given, else the profile's base_urls."""
    return run_urls(flags, target.settings.endpoint.profile)


def run_urls(flags: "EndpointFlags", profile) -> list[str]:
    """The run's servers in order, each once: --base-url (once or more) overrides the profile's list."""
    urls = list(flags.base_urls) or ([flags.base_url] if flags.base_url else list(profile.base_urls or ()))
    return list(dict.fromkeys(u.rstrip("/") for u in urls))


def targets_for(target: "Target", flags: "EndpointFlags", environ: Optional[Mapping[str, str]] = None
                ) -> list["Target"]:
    """One target per server: the same model and family, each URL with the key the one key rule gives it."""
    from ..settings import resolve_settings
    from ..core.endpoint import attach_server

    urls = server_urls(flags, target)
    if len(urls) <= 1:
        return [target]
    first = target.settings.endpoint
    targets = []
    for url in urls:
        own = resolve_settings(replace(flags, base_url=url, base_urls=()), environ)
        own = attach_server(own, os.environ if environ is None else environ).endpoint
        endpoint = replace(first, base_url=own.base_url, api_key=own.api_key, withheld_key=own.withheld_key)
        targets.append(replace(target, settings=replace(target.settings, endpoint=endpoint)))
    return targets


def connect_first(settings, flags: "EndpointFlags", out, environ: Optional[Mapping[str, str]] = None) -> "Target":
    """The endpoint step on the first server that answers: one server down at the start does not stop
    a run that has others."""
    from ..settings import resolve_settings
    from ..core.endpoint import connect
    from ..errors import EndpointTimeout, EndpointUnavailable

    profile = settings.endpoint.profile
    urls = run_urls(flags, profile)
    others = [u for u in urls if u != settings.endpoint.base_url]
    while True:
        try:
            return connect(settings, out, dry_run=False, environ=environ)
        except (EndpointUnavailable, EndpointTimeout) as exc:
            if not others:
                raise
            out.warn(f"{exc.message()}; trying the next server")
            settings = resolve_settings(replace(flags, base_url=others.pop(0), base_urls=()), environ)


def connect_all(settings, flags: "EndpointFlags", out, requested: Optional[int],
                environ: Optional[Mapping[str, str]] = None) -> tuple["Target", list["Target"], int]:
    """A many-job run's servers: the first that answers, every server of the run (none keyless), and how many
    jobs run at once (`requested`, else the profile's default for the server)."""
    target = connect_first(settings, flags, out, environ)
    targets = targets_for(target, flags, environ)
    refuse_keyless(targets)
    endpoint = settings.endpoint
    return target, targets, requested or endpoint.profile.default_concurrency(endpoint.base_url)


def refuse_keyless(targets: list["Target"]) -> None:
    """A server that is not on this machine and has no key of its own is refused once, before any job
    (rather than every job sent to it failing on its own)."""
    from ..settings import PLACEHOLDER_KEY
    from ..urls import is_loopback

    for target in targets:
        endpoint = target.settings.endpoint
        if not is_loopback(endpoint.base_url) and endpoint.api_key in (None, PLACEHOLDER_KEY):
            replace(endpoint, api_key=None).require_key()
