"""The network side of the server: whether vLLM can listen where asked, and whether it answers."""

from __future__ import annotations

import errno
import socket

from ..errors import ServeError, UsageError

# What to do about a failed bind, by errno: the address is the --host's fault, the rest the port's.
_HOST_HINT = "give an address of this machine: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
_BIND_PROBLEMS = {
    errno.EADDRINUSE: ("the port is already in use",
                       "choose another port with --port, or stop what is listening there"),
    errno.EACCES: ("permission denied (ports below 1024 need privileges)", "choose a port above 1023 with --port"),
}


def check_listen(host: str, port: int) -> None:
    """Refuse, before vLLM starts, a host:port it could not listen on right now."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError("cannot use --host", exc.strerror or str(exc), where=host, hint=_HOST_HINT) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError("cannot use --host", "the address is not one of this machine's", where=host,
                                 hint=_HOST_HINT) from None
            why, hint = _BIND_PROBLEMS.get(exc.errno, (exc.strerror or str(exc), "check --host and --port"))
            raise ServeError(f"cannot listen on {host}:{port}", why, hint=hint) from None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return True
    except (OSError, UnicodeError):  # UnicodeError: a host name the IDNA codec refuses (an empty or long label)
        return False


def healthy(root_url: str, timeout: float = 2.0) -> bool:
    """Whether `GET {root_url}/health` answers 200 (how a vLLM server says it is ready), its status line
    whole within `timeout` seconds: a server dripping its reply a byte at a time cannot hold the wait."""
    import re
    import time
    from urllib.parse import urlsplit

    parts = urlsplit(root_url)
    try:
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        return False
    if parts.scheme != "http" or not host:
        return False  # mmcli's own servers speak plain http on this machine; no proxy ever answers for them
    deadline = time.monotonic() + timeout
    request = f"GET {parts.path.rstrip('/')}/health HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                sock.settimeout(left)
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return False
    return re.match(rb"HTTP/1\.[01] 200 ", head) is not None
