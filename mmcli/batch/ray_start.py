"""Ray for `--engine ray`: imported only when asked for (with a clear error when it is not installed), joined
or started for the run."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from ..errors import RayLines, UsageError

# Ray's own client says only "Failed to connect" (after InvalidAuthToken lines) when the cluster wants a token.
AUTH_HINT = ("; a cluster with token authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN, "
             "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (`ray get-auth-token` on its head node)")
INSTALL_HINT = "install it in the mmcli checkout: pip install -e '.[ray]' (Ray Data; no vLLM, no torch)"


def import_ray() -> Any:
    """Ray and Ray Data, or a clear error that says how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray without its Data library cannot run the jobs
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray Data, which is not installed", str(exc), hint=INSTALL_HINT) from None
    return ray


def start_ray(ray: Any, address: Optional[str], environ: Optional[Mapping[str, str]]) -> bool:
    """Join the Ray that --ray-address (or RAY_ADDRESS) names, or start a local one; False when this process
    already had Ray running (it is left running)."""
    import logging

    if ray.is_initialized():
        return False
    env = os.environ if environ is None else environ
    options: dict = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None and not env.get("RAY_ADDRESS"):
        # "local": a Ray of this run's own; without it Ray joins whatever cluster this machine last started.
        address = "local"
        # A local Ray's workers import this very mmcli, wherever it was imported from.
        import mmcli

        root = str(Path(mmcli.__file__).resolve().parent.parent)
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": root}}
    given = address if address is not None else env.get("RAY_ADDRESS")
    if given is not None and given not in ("auto", "local"):
        refuse_unusable(given)
        refuse_unreachable(given, tls=(env.get("RAY_USE_TLS") or "0").lower() not in ("0", "false", ""))
    no_token = getattr(ray.exceptions, "AuthenticationError", ConnectionError)  # Ray 2.52+: token mode, no token
    said: list[str] = []
    try:
        with ray_lines_kept(said):
            ray.init(address=address, **options)
    except no_token as exc:
        raise UsageError("cannot reach Ray", str(exc).split(". ")[0], where=given or "a local Ray",
                         hint="put the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token "
                              "(`ray get-auth-token` on its head node), or unset RAY_AUTH_MODE for a cluster "
                              "without authentication") from RayLines(said)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise not_joined(exc, said, given, address or env.get("RAY_ADDRESS") or "a local Ray",
                         token_mode=(env.get("RAY_AUTH_MODE") or "").lower() == "token") from RayLines(said)
    return True


def not_joined(exc: BaseException, said: list[str], given: Optional[str], where: str, token_mode: bool) -> UsageError:
    """ray.init's failure as one error: the cause Ray's own lines name (a token refused), never the head's
    internal address that Ray's message names (the address given is in `where`)."""
    hint = "check --ray-address (the head's HOST:6379), or leave it out for a local Ray"
    if any("InvalidAuthToken" in line or "Unauthenticated" in line for line in said):
        if token_mode:
            return UsageError("cannot start or reach Ray", "the cluster refused the authentication token", where=where,
                              hint="check that the token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token "
                                   "is the cluster's (`ray get-auth-token` on its head node)")
        return UsageError("cannot start or reach Ray", "the cluster asks for an authentication token", where=where,
                          hint="set RAY_AUTH_MODE=token and put the cluster's token in RAY_AUTH_TOKEN, "
                               "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (`ray get-auth-token` on its head node)")
    if isinstance(exc, ConnectionError) and given not in (None, "local"):
        # Ray sends a token only in token mode: a token in RAY_AUTH_TOKEN or ~/.ray/auth_token alone is not used
        # for an address given (Ray itself enables the mode only for a local cluster it finds on its own).
        hint += (AUTH_HINT if not token_mode else
                 "; with RAY_AUTH_MODE=token, check that the token is the cluster's (`ray get-auth-token` on its head)")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UsageError("cannot start or reach Ray", re.sub(r"\s+at\s+\S+:\d+\b", "", first), where=where, hint=hint)


KEPT_LINES = 200  # Ray's lines kept from one start (a join refused for its token retries some 20 s, a line a second)


@contextmanager
def ray_lines_kept(said: list[str]) -> Iterator[None]:
    """While Ray starts or joins: what it writes to the process's standard error (its C++ code writes to fd 2,
    beneath Python's sys.stderr) goes into `said`, not the terminal. And unless RAY_BACKEND_LOG_LEVEL is set,
    Ray's C++ logging, which reads that variable as it starts, keeps only fatal errors from then on: else one
    line per run says that Ray Data's actor pool takes its constructor arguments from the object store (as it
    always does; the actors' restarts are not changed by this)."""
    import sys
    import tempfile

    level_set = "RAY_BACKEND_LOG_LEVEL" in os.environ
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    try:
        saved = os.dup(2)
    except OSError:  # standard error closed: nothing of Ray's can reach a terminal
        saved = None
    try:
        log = tempfile.TemporaryFile()
    except OSError:  # no temporary folder can be written (TMPDIR and /tmp): Ray's lines are dropped, not kept
        log = open(os.devnull, "w+b")
    with log:
        if saved is not None:
            os.dup2(log.fileno(), 2)
        if not level_set:
            os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
        try:
            yield
        finally:
            if not level_set:
                os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
            _flush(sys.stderr)
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            log.seek(0)
            said.extend(log.read().decode("utf-8", "replace").splitlines()[-KEPT_LINES:])


def _flush(stream: Any) -> None:
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass  # closed, or no stream at all


# Ray Data's threads that call into Ray while a run is going: its executor, and the threads that fetch the
# blocks an iterator reads. A stopped run's executor joins its thread for only 2 s, and an iterator's threads
# end only after the fetch they are in; one still in Ray when Ray shuts down ends the whole process (exit 1).
_RUN_THREADS = ("StreamingExecutor-", "iter_threaded", "map_tp_")


def stop_ray(ray: Any, wait: float = 30.0) -> None:
    """ray.shutdown(), once Ray Data's run threads have ended (at most `wait` seconds in all)."""
    import threading
    import time

    until = time.monotonic() + wait
    for thread in threading.enumerate():
        if thread.name.startswith(_RUN_THREADS) and thread.is_alive():
            thread.join(max(0.0, until - time.monotonic()))
    ray.shutdown()


def refuse_unusable(address: str) -> None:
    """Addresses refused before Ray is asked: empty, a web URL, a Ray Client (ray://) address."""
    hint = "give the head's HOST:6379 (its GCS port, reachable from this machine), or leave it out for a local Ray"
    scheme = address.strip().partition("://")[0].lower() if "://" in address else ""
    if not address.strip():
        raise UsageError("--ray-address must be a Ray address", f"got {address!r}", hint=hint)
    if scheme in ("http", "https"):
        raise UsageError("not a Ray address", "a web URL (the dashboard's?) is not where Ray is joined",
                         where=address, hint=hint)
    if scheme == "ray":
        # Ray Data's streaming run needs a driver in the cluster; through Ray Client it fails inside Ray.
        raise UsageError("a Ray Client address (ray://) cannot run these jobs", where=address,
                         hint=hint + "; or run mmcli on a node of the cluster")


def refuse_unreachable(address: str, timeout: float = 5.0, tls: bool = False) -> None:
    """A cluster address nothing answers at, or something that is not Ray, is refused at once (Ray itself keeps
    trying for minutes); with TLS (RAY_USE_TLS) only the connection is checked."""
    import socket
    from urllib.parse import urlsplit

    try:  # urlsplit itself raises on some (`[::1`), .port on others (`h:x`)
        parts = urlsplit(address if "://" in address else "tcp://" + address)
        host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    except ValueError:
        host = port = None
    if not host:
        raise UsageError("not a Ray address", where=address,
                         hint="give the head's HOST:6379 (an IPv6 host in brackets: [::1]:6379)")
    hint = ("check --ray-address (or RAY_ADDRESS) and that the cluster is up (`ray status` on its head node), "
            "or leave it out for a local Ray")
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            speaks = tls or _speaks_grpc(conn)
    except UnicodeError:  # the IDNA codec refuses the name (an empty label, one past 63 letters)
        raise UsageError("not a Ray address", f"{host} is not a host name", where=address,
                         hint="give the head's HOST:6379 (an IPv6 host in brackets: [::1]:6379)") from None
    except OSError as exc:
        raise UsageError("cannot reach the Ray cluster", exc.strerror or str(exc) or type(exc).__name__,
                         where=f"{host}:{port}", hint=hint) from None
    if not speaks:
        # Ray's client retries a port that answers but is not Ray for many minutes, printing its own lines.
        raise UsageError("cannot reach Ray", "something answers there, but not Ray", where=f"{host}:{port}",
                         hint=hint + " (a head's address is HOST:6379)")


# An HTTP/2 client's first bytes and an empty SETTINGS frame: a gRPC server (Ray's GCS and client server) answers
# with a SETTINGS frame of its own; an HTTP/1 server, or anything else, does not.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_grpc(conn: Any) -> bool:
    """True when the server on `conn` answers an HTTP/2 preface with a SETTINGS frame, as Ray's gRPC servers do."""
    conn.sendall(_PREFACE)
    head = b""
    while len(head) < 9:
        try:
            chunk = conn.recv(9 - len(head))
        except OSError:  # reset or timed out: not an HTTP/2 server
            return False
        if not chunk:
            return False
        head += chunk
    return head[3] == 0x04
