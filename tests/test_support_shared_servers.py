"""tests/support/shared_servers.py, which the vLLM tier's shared servers rest on: a server starts once for all
the tests that use it, stops after the last of them, and a start that failed is not tried again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.shared_servers import SharedServers


def _items(*uses: tuple[str, ...]) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=f"t{n}", fixturenames=list(names)) for n, names in enumerate(uses)]


def _server(log: list[str], name: str):
    log.append(f"start {name}")
    try:
        yield f"server {name}"
    finally:
        log.append(f"stop {name}")


def test_a_shared_server_starts_for_its_first_user_and_stops_after_its_last():
    items = _items(("a",), ("tmp_path",), ("a", "b"), ("a",), ())
    shared, log = SharedServers({"a", "b"}), []
    shared.count(items)
    for item in items:
        for name in sorted(shared.used_by(item)):
            assert shared.get(name, lambda name=name: _server(log, name)) == f"server {name}"
        log.append(f"ran {item.name}")
        shared.finished(item)
    assert log == ["start a", "ran t0", "ran t1", "start b", "ran t2", "stop b", "ran t3", "stop a", "ran t4"]
    assert shared.running == {}


def test_stop_all_stops_what_a_partial_run_left_running():
    items = _items(("a",), ("a",))
    shared, log = SharedServers({"a"}), []
    shared.count(items)
    shared.get("a", lambda: _server(log, "a"))
    shared.finished(items[0])
    assert log == ["start a"]  # one user still to run
    shared.stop_all()
    assert log == ["start a", "stop a"] and shared.running == {}


def test_a_start_that_failed_is_not_tried_again():
    shared, starts = SharedServers({"a"}), []

    def broken():
        starts.append(1)
        raise RuntimeError("no server")
        yield  # a generator, as the fixtures' are

    for _ in range(3):
        with pytest.raises(RuntimeError, match="no server"):
            shared.get("a", broken)
    assert starts == [1]


def test_users_are_moved_up_to_follow_the_first_one_and_the_rest_keep_their_order():
    items = _items(("x",), ("a",), ("y",), ("b",), ("a",), ("z",), ("a", "b"))
    order = [item.name for item in SharedServers({"a", "b"}).users_together(items)]
    assert order == ["t0", "t1", "t4", "t6", "t2", "t3", "t5"]
