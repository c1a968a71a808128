"""Pure: model-written labels made safe to show on a terminal, draw on an image or use in a file name."""

from __future__ import annotations

import re
import unicodedata

from mmcli.terminal import strip_controls

_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def clean_label(text: str, limit: int = 60) -> str:
    """`text` without control, format or private-use characters, whitespace collapsed, at most `limit` characters."""
    # Whole escape sequences go first, so no "]0;title" is left of a window-title sequence.
    kept = "".join(" " if unicodedata.category(c).startswith(("C", "Z")) else c for c in strip_controls(str(text), " "))
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[: max(1, limit - 1)].rstrip() + "…"


def slug(text: str, limit: int = 32) -> str:
    """A file-name-safe ASCII form of a label ("" when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", clean_label(text, 200)).encode("ascii", "ignore").decode()
    return _SLUG_UNSAFE.sub("-", ascii_text).strip("-").lower()[:limit].strip("-")
