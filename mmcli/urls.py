"""Pure facts about URLs: is it this machine, the same origin, and how to show it without its password."""

from __future__ import annotations

import ipaddress
import re
from typing import Optional
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or address, IPv6 with or without brackets) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine."""
    return is_loopback_host(urlsplit(url).hostname or "")


def masked_url(url: str) -> str:
    """`url` with any password in it shown as `***` (user:***@host), for messages and plans."""
    # By hand rather than urlsplit: the URL may be malformed (an error message is being written about it).
    match = re.match(r"([^:/?#]+:)?//([^/?#]*)", url)
    if not match or "@" not in match.group(2):
        return url
    userinfo, _, host = match.group(2).rpartition("@")
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return url[:match.start(2)] + f"{user}:***@{host}" + url[match.end(2):]


def masked_urls(value):
    """A copy of a JSON-like value (a request, a message) with every http(s) URL string's password masked."""
    if isinstance(value, dict):
        return {k: masked_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_urls(v) for v in value]
    if isinstance(value, str) and value[:8].lower().startswith(("http://", "https://")):
        return masked_url(value)
    return value


# A URL's scheme and authority inside free text (a server's message, a library's error): what may hold a password.
_AUTHORITY_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#\"'<>]*@[^\s/?#\"'<>]*")


def masked_text(text: str) -> str:
    """`text` with every URL in it passed through masked_url: no password shows, whoever wrote the text."""
    return _AUTHORITY_IN_TEXT.sub(lambda match: masked_url(match.group()), text)


def _origin(url: str) -> tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number cannot match any key's home
        port = -1
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port if port is not None else default


def same_origin(url: str, home: Optional[str]) -> bool:
    """Whether `url` is the scheme, host and port of `home` (where a key is meant to go)."""
    return home is not None and _origin(url) == _origin(home)
