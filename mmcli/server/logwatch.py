"""What a starting vLLM is doing, read from its log: downloading the weights (with a percentage),
loading them, sizing the cache, starting the API. A first start takes minutes; this says why."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional

# (phase shown, words in vLLM's log that mean it started); checked in this order on each new line.
_PHASES = [
    ("starting the API server", ("Starting vLLM API server", "Application startup complete", "Available routes")),
    ("sizing the KV cache and warming up", ("KV cache", "Memory profiling", "init engine", "warming up",
                                            "Compiling a graph", "Capturing CUDA graph")),
    ("loading the weights", ("Loading weights", "Loading safetensors", "Loading model", "Starting to load model")),
]
DOWNLOADING = "downloading the weights"
# Only the model hub's own lines: its tqdm bars ("Fetching 12 files:  25%|", "model.safetensors:  42%|",
# "model.safetensors: downloading bytes:  42%|", "Downloading bytes:  42%|"). Loose words would match a local
# folder's loading ("Auto-prefetch is disabled ... start vLLM with --safetensors-load-strategy=prefetch").
_DOWNLOAD = re.compile(r"(?:^|\s)(?:Fetching \d+ files|Downloading[\w .()…-]*|[^\s:]*\.(?:safetensors|bin|pt|pth|gguf|json|"
                       r"model|txt|py)(?:: (?:downloading bytes|reconstructing file))?): +\d{1,3}%\|")
# tqdm progress in the log: "model.safetensors:  42%|####   | 1.8G/4.4G" (carriage returns between updates).
_PERCENT = re.compile(r"(\d{1,3})%\|")


def phase_of(line: str) -> Optional[str]:
    """The phase a log line shows, if any."""
    lower = line.lower()
    for phase, needles in _PHASES:
        if any(needle.lower() in lower for needle in needles):
            return phase
    return DOWNLOADING if _DOWNLOAD.search(line) else None


class LogWatcher:
    """Follows a log file; calls `say` when the phase changes, and every 10% of a download."""

    def __init__(self, log: Path, say: Callable[[str], None]) -> None:
        self.log = log
        self.say = say
        self.offset = 0
        self.phase: Optional[str] = None
        self.shown_percent = -10

    def poll(self) -> None:
        """Read what the log gained since the last call and report what changed."""
        try:
            with open(self.log, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(1 << 20)
        except OSError:
            return
        if not data:
            return
        # Only whole lines (or tqdm's \r-separated updates); a partial one waits for the next poll.
        end = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if end < 0:
            if len(data) == 1 << 20:  # a megabyte with no line end is no progress line: pass over it
                self.offset += len(data)
            return
        self.offset += end + 1
        for line in re.split(r"[\r\n]", data[:end + 1].decode("utf-8", "replace")):
            self._see(line)

    def _see(self, line: str) -> None:
        phase = phase_of(line)
        if phase is not None and phase != self.phase:
            self.phase = phase
            self.say(phase)
        if self.phase == DOWNLOADING:
            match = _PERCENT.search(line)
            if match and int(match.group(1)) < self.shown_percent - 20:
                self.shown_percent = -10  # the next file's download
            if match and int(match.group(1)) >= self.shown_percent + 10:
                self.shown_percent = int(match.group(1)) // 10 * 10
                self.say(f"downloading the weights: {match.group(1)}%")
