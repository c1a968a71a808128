"""A deadline for a whole request, beneath httpx's timeouts, which run per socket read.

A server that sends a byte every few seconds never trips a per-read timeout: its status line, headers or
body can hold a run for ever. Here the connection pool's network backend is wrapped so that every connect,
read and write of a client waits at most until the deadline that client holds for the current thread
(each thread sends its own requests, so each has its own deadline). Who sets it decides what it covers:
mmcli.net.transport starts one with every request (connect, upload, the wait for the reply, a whole reply)
and moves it on with each event of a streamed answer; a media download holds one for all its redirects.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

import httpcore2


class Deadline:
    """The moment (time.monotonic) by which the current thread's request must be done, if any."""

    def __init__(self) -> None:
        self._local = threading.local()

    def start(self, seconds: float) -> None:
        """From now on, `seconds` more for the current thread's request."""
        self._local.at = time.monotonic() + seconds

    def clear(self) -> None:
        """No deadline for the current thread (only the per-read timeouts)."""
        self._local.at = None

    def left(self, timeout: Optional[float], expired: type) -> Optional[float]:
        """The timeout for one socket call: `timeout`, shortened to what is left; `expired` raised at the end."""
        at = getattr(self._local, "at", None)
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise expired("the request's deadline passed")
        return left if timeout is None else min(timeout, left)

    def hold(self, transport) -> None:
        """Make `transport` (an httpx2.HTTPTransport, proxied or not) keep this deadline."""
        # httpx2 does not pass a network backend on to its pool; the pool takes one, and is made without.
        pool = transport._pool
        if not isinstance(pool._network_backend, _Backend):
            pool._network_backend = _Backend(pool._network_backend, self)

    def hold_client(self, client) -> None:
        """Make every transport of an httpx2.Client keep this deadline (the proxies from the environment too)."""
        import httpx2

        for transport in (client._transport, *client._mounts.values()):
            if isinstance(transport, httpx2.HTTPTransport):
                self.hold(transport)


class _Stream(httpcore2.NetworkStream):
    """A connection whose reads and writes end at the deadline."""

    def __init__(self, inner: httpcore2.NetworkStream, deadline: Deadline) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        """Read, waiting no later than the deadline."""
        return self.inner.read(max_bytes, self.deadline.left(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        """Write, waiting no later than the deadline (a server reading slowly holds no longer)."""
        if len(buffer) <= 1 << 16:
            self.inner.write(buffer, self.deadline.left(timeout, httpcore2.WriteTimeout))
            return
        view = memoryview(buffer)  # a large upload in pieces, so the deadline is checked between them
        for start in range(0, len(view), 1 << 16):
            self.inner.write(view[start:start + (1 << 16)], self.deadline.left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        """Close the connection."""
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname: Optional[str] = None,
                  timeout: Optional[float] = None) -> httpcore2.NetworkStream:
        """The TLS handshake, within the deadline; the TLS stream keeps it too."""
        timeout = self.deadline.left(timeout, httpcore2.ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, timeout), self.deadline)

    def get_extra_info(self, info: str):
        """What the connection underneath says (its socket, whether it is readable, ...)."""
        return self.inner.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    """Connections that keep the deadline, from the backend the pool had."""

    def __init__(self, inner: httpcore2.NetworkBackend, deadline: Deadline) -> None:
        self.inner = inner
        self.deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: Optional[float] = None, local_address: Optional[str] = None,
                    socket_options=None) -> httpcore2.NetworkStream:
        """Connect within the deadline."""
        try:
            stream = self.inner.connect_tcp(host, port, self.deadline.left(timeout, httpcore2.ConnectTimeout),
                                            local_address, socket_options)
        except UnicodeError:  # the IDNA codec refuses the name (an empty label, one past 63 letters): no such host
            raise httpcore2.ConnectError(f"{host} is not a host name") from None
        return _Stream(stream, self.deadline)

    def connect_unix_socket(self, path: str, timeout: Optional[float] = None,
                            socket_options=None) -> httpcore2.NetworkStream:
        """Connect within the deadline."""
        stream = self.inner.connect_unix_socket(path, self.deadline.left(timeout, httpcore2.ConnectTimeout),
                                                socket_options)
        return _Stream(stream, self.deadline)

    def sleep(self, seconds: float) -> None:
        """Sleep (between connection attempts)."""
        self.inner.sleep(seconds)
