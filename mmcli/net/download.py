"""Media downloads: http(s) only, every redirect re-checked, size-capped, before anything is sent."""

from __future__ import annotations

from .transport import CONNECT_TIMEOUT
from ..errors import MediaError


def fetch_url(url: str, max_bytes: int, timeout: float, max_redirects: int = 5) -> tuple[bytes, str]:
    """Download `url` (http/https only, every redirect re-checked) up to `max_bytes`; (data, final URL).
    The whole download must end within `timeout` seconds: a server dripping bytes cannot hold the run."""
    import httpx2

    from .deadline import Deadline

    clock = Deadline()
    current = url
    with httpx2.Client(timeout=httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
                       follow_redirects=False) as http:
        clock.hold_client(http)
        clock.start(timeout)  # one deadline for every redirect, the headers and the body
        for _ in range(max_redirects + 1):
            _check_media_url(current, url)
            try:
                with http.stream("GET", current) as response:
                    if response.is_redirect:
                        current = str(response.url.join(response.headers.get("location", "")))
                        continue
                    if response.status_code >= 400:
                        raise MediaError("cannot download media", f"HTTP {response.status_code}", where=url,
                                         hint=_status_hint(response.status_code))
                    return _read_capped(response, max_bytes, url), current
            except httpx2.TimeoutException:
                raise MediaError("cannot download media", f"not whole within {timeout:g} s", where=url,
                                 hint="raise --timeout, or download the file and pass its path") from None
            except httpx2.TransportError as exc:
                raise MediaError("cannot download media", str(exc) or type(exc).__name__, where=url,
                                 hint="check the URL, or download the file and pass its path") from None
    raise MediaError("cannot download media", f"more than {max_redirects} redirects", where=url,
                     hint=_LOCAL_COPY)


_LOCAL_COPY = "download the file yourself and pass its path"


def _status_hint(status: int) -> str:
    if status in (401, 403, 407):
        return f"the server wants a login mmcli does not send; {_LOCAL_COPY}"
    if status in (404, 410):
        return f"check the URL, or {_LOCAL_COPY}"
    return f"try again later, or {_LOCAL_COPY}"


def _check_media_url(current: str, original: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(current)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError("refusing to download media", f"only http and https URLs are fetched, got {current!r}",
                         where=original)


_TOO_LARGE = "download the file yourself (or a smaller copy) and pass its path"


def _read_capped(response, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MediaError("media too large", f"{int(declared):,} bytes, over the {max_bytes:,}-byte limit", where=url,
                         hint=_TOO_LARGE)
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise MediaError("media too large", f"over the {max_bytes:,}-byte limit", where=url, hint=_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)
