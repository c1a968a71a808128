"""Servers that the tests of several modules share (the vLLM tier's): each starts for its first test and stops
after its last test in this process (at the session's end at the latest), so one configuration starts once a
run and does not idle beside the servers of the modules that follow. Pytest's own scopes cannot say this: a
module fixture starts again in every module, a session fixture lives to the session's end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class SharedServers:
    """The running shared servers, by fixture name, and how many tests that use each are still to run."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        self.left: Counter[str] = Counter()
        self.running: dict[str, tuple[Iterator[Any], Any]] = {}  # name -> (its generator, its server)
        self.failed: dict[str, BaseException] = {}  # name -> why it could not start

    def used_by(self, item: Any) -> set[str]:
        """The shared fixtures a test item uses."""
        return set(self.names.intersection(getattr(item, "fixturenames", ())))

    def count(self, items: Iterable[Any]) -> None:
        """Note the tests this process will run."""
        for item in items:
            self.left.update(self.used_by(item))

    def get(self, name: str, start: Callable[[], Iterator[Any]]) -> Any:
        """The running server of `name`, started by `start` (a generator that yields it, then stops it) if need be."""
        if name in self.failed:  # as pytest does for a fixture of a wider scope: no second attempt
            raise self.failed[name]
        if name not in self.running:
            servers = start()
            try:
                self.running[name] = (servers, next(servers))
            except BaseException as exc:
                self.failed[name] = exc
                raise
        return self.running[name][1]

    def finished(self, item: Any) -> None:
        """After a test: stop the servers it was the last user of."""
        for name in self.used_by(item):
            self.left[name] -= 1
            if self.left[name] <= 0:
                self.stop(name)

    def stop(self, name: str) -> None:
        """Stop one server (its generator's `finally` stops it)."""
        servers, _ = self.running.pop(name, (None, None))
        if servers is not None:
            servers.close()

    def stop_all(self) -> None:
        """Stop every server still running."""
        for name in list(self.running):
            self.stop(name)

    def users_together(self, items: list[Any]) -> list[Any]:
        """`items` with the tests that use a shared server moved up to follow its first user, each module's own
        order kept: the server then serves them in one stretch and stops."""
        first: dict[str, int] = {}
        anchors = [min((first.setdefault(name, index) for name in sorted(self.used_by(item))), default=index)
                   for index, item in enumerate(items)]
        return [item for _, _, item in sorted(zip(anchors, range(len(items)), items), key=lambda t: t[:2])]
