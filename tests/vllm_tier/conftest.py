"""Fixtures of the real-vLLM tier: one vLLM server with a tiny Qwen2-VL per session, and one
server per tiny model family for the tests that go through every family.

Every test in this folder gets the ``vllm`` marker (deselect with ``-m "not vllm"``).
When the tier cannot be set up here the tests are skipped, unless
MMCLI_REQUIRE_VLLM_TIER=1 (as in CI), where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import tier  # noqa: E402
import tier_trained  # noqa: E402

from tests.support.shared_servers import SharedServers  # noqa: E402

REQUIRE_ENV = "MMCLI_REQUIRE_VLLM_TIER"
HEALTH_TIMEOUT = 300.0


@dataclass(frozen=True)
class VllmServer:
    """How tests reach the session's vLLM server."""

    base_url: str
    model: str
    log_path: Path
    root_url: str
    family: str = "qwen2-vl"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: needs the real vLLM tier (tests/vllm_tier)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.vllm)
            # Under pytest-xdist every tier test runs in one worker, so each server starts once per run.
            item.add_marker(pytest.mark.xdist_group("vllm"))
    items[:] = SharedServers(SHARED_FIXTURES).users_together(items)


def tier_required() -> bool:
    """True when the environment demands the tier (CI): no skipping allowed."""
    return os.environ.get(REQUIRE_ENV) == "1"


def unavailable(reason: str) -> None:
    """Skip, or fail when the tier is required."""
    if tier_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def prepared_tier(log=None):
    """The tier's venv and models; a skip here, a failure where the tier is required (CI)."""
    try:
        return tier.prepare(log=log) if log else tier.prepare()
    except (tier.TierUnavailable, tier.BuildError, subprocess.SubprocessError, OSError) as exc:
        unavailable(f"vLLM tier unavailable: {exc}")


def _progress(config: pytest.Config):
    capture = config.pluginmanager.getplugin("capturemanager")

    def log(message: str) -> None:
        if capture is None:
            print(message, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            print(message, file=sys.stderr, flush=True)

    return log


def serve_tiny_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                     family: str = "qwen2-vl", served_name: str | None = None, **model):
    """Generator for fixtures: yield a healthy server of one family's tiny model, then stop it.

    ``model`` may name another ``model_dir`` and ``dtype`` (the trained models).
    """
    log = _progress(request.config)
    paths = prepared_tier(log)
    log_path = tmp_path_factory.mktemp(f"vllm_tier_{family}") / "server.log"
    handle = tier.start_server(paths, tier.free_port(), log_path, family=family,
                               served_name=served_name, **model)
    try:
        waited = tier.wait_healthy(handle.base_url, HEALTH_TIMEOUT, handle)
        log(f"vllm tier: {family} server healthy after {waited:.0f}s at {handle.base_url} "
            f"(log: {log_path})")
        yield VllmServer(base_url=handle.base_url, model=handle.model, log_path=log_path,
                         root_url=handle.root_url, family=family)
    finally:
        tier.stop_server(handle)


@pytest.fixture(scope="session")
def vllm_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A healthy vLLM server on 127.0.0.1 serving the tiny Qwen2-VL; stopped at session end."""
    yield from serve_tiny_model(request, tmp_path_factory)


# The session server's own family last: switching to it stops the last other family's server at once.
SERVED_FAMILIES = sorted(tier.FAMILIES, key=lambda family: family == "qwen2-vl")


@pytest.fixture(scope="session", params=SERVED_FAMILIES)
def family_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Each family's tiny model in turn, one server at a time beside the session's Qwen2-VL.

    Qwen2-VL reuses the session server; the others start with the same flags and stop before
    the next family's server starts. Session-scoped, so pytest runs every module's tests of one
    family together and each family's server starts once a run, however many modules use it.
    """
    if request.param == "qwen2-vl":
        yield request.getfixturevalue("vllm_server")
        return
    yield from serve_tiny_model(request, tmp_path_factory, request.param)


# Fixtures whose server is shared by the modules that use it (tests/support/shared_servers.py).
SHARED = pytest.StashKey[SharedServers]()
SHARED_FIXTURES = ("trained_server",)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SHARED] = SharedServers(SHARED_FIXTURES)
    session.config.stash[SHARED].count(session.items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    try:
        return (yield)
    finally:
        if SHARED in item.config.stash:
            item.config.stash[SHARED].finished(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if SHARED in session.config.stash:
        session.config.stash[SHARED].stop_all()


@pytest.fixture
def trained_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> VllmServer:
    """vLLM (fp32) serving the committed trained Qwen2-VL, shared by every module that uses it; a stale or
    missing model fails here."""

    def start() -> Iterator[VllmServer]:
        try:
            folder = tier_trained.check_fresh(TRAINED_FAMILY)
        except tier_trained.StaleModel as exc:
            pytest.fail(str(exc), pytrace=False)
        yield from serve_tiny_model(request, tmp_path_factory, TRAINED_FAMILY,
                                    served_name=tier_trained.SERVED_NAMES[TRAINED_FAMILY],
                                    model_dir=folder, dtype="float32")

    return request.config.stash[SHARED].get("trained_server", start)


TRAINED_FAMILY = "qwen2-vl"
