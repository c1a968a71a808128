"""The vLLM child's process group: spawning it, telling it from a reused pid, stopping all of it,
waiting for it to be ready, and reading its log when it fails."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from ..errors import EndpointTimeout, ServeError
from .defaults import DEFAULT_STOP_GRACE
from ..hints import CPU_INSTALL, GPU_INSTALL

INSTALL_HINT = (f"in the mmcli checkout: {GPU_INSTALL} (a GPU) or {CPU_INSTALL} (no GPU; docs/install.md); "
                "or point --vllm-python (or vllm_python in the config) at the Python of an environment that has vLLM")


def _proc_stat(pid: int) -> Optional[list[str]]:
    # Fields after "(comm)": state, ppid, pgrp, ... starttime is the 20th of them.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _have_proc() -> bool:
    return Path("/proc/self/stat").exists()


def proc_start(pid: int) -> Optional[str]:
    """The kernel's start time of `pid` (Linux), to tell it from a later process with the same pid."""
    stat = _proc_stat(pid)
    return stat[19] if stat else None


def pid_alive(pid: int, start: Optional[str] = None) -> bool:
    """Whether `pid` runs (not a zombie) and, if `start` is given, is the same process as then."""
    if _have_proc():
        stat = _proc_stat(pid)
        return stat is not None and stat[0] != "Z" and (start is None or stat[19] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    if not _have_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    return [pid for pid, stat in _all_stats().items() if stat[0] != "Z" and int(stat[2]) == pgid]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children that left the group included)."""
    if not _have_proc():
        return set()
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for child, stat in stats.items():
        if stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal_all(pgid: int, others: set[int], sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in others:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _gone(pgid: int, others: set[int], deadline: float, reap: Optional[Callable[[], object]]) -> bool:
    while True:
        if reap:
            reap()
        if not group_members(pgid) and not any(pid_alive(pid) for pid in others):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_group(pgid: int, grace: float = DEFAULT_STOP_GRACE, reap: Optional[Callable[[], object]] = None) -> bool:
    """SIGTERM the process group (and any descendant that left it), SIGKILL what is left after `grace`."""
    # vLLM's engine processes outlive a plain kill of the parent and keep the GPU: stop them all.
    others = descendants(pgid) - set(group_members(pgid))
    _signal_all(pgid, others, signal.SIGTERM)
    if _gone(pgid, others, time.monotonic() + grace, reap):
        return True
    _signal_all(pgid, others | descendants(pgid), signal.SIGKILL)
    return _gone(pgid, others, time.monotonic() + 10.0, reap)


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start the child in a new session (its own process group), output appended to `log_path`."""
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        except OSError as exc:
            raise ServeError("cannot run vLLM", exc.strerror or str(exc), where=argv[0],
                             hint=INSTALL_HINT) from None


def shebang_python(script: str) -> Optional[str]:
    """The Python interpreter a script's `#!` line names, if it names one that exists."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    parts = first[2:].split() if first.startswith("#!") else []
    if len(parts) == 1 and Path(parts[0]).name.startswith("python") and Path(parts[0]).is_file():
        return parts[0]
    return None


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file ('' if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until_ready(root_url: str, exited: Callable[[], Optional[object]], timeout: float, log: Path,
                     healthy: Callable[[str], bool], watch: Optional[Callable[[], None]] = None) -> float:
    """Poll /health until it answers 200 (calling `watch` between polls); fail fast when the child
    exits; seconds waited."""
    start = time.monotonic()
    delay = 0.1
    while True:
        if watch is not None:
            watch()
        if healthy(root_url):
            if watch is not None:
                watch()  # what the log said just before
            return time.monotonic() - start
        code = exited()
        if code is not None:
            raise exit_error("vLLM exited before it was ready", code, log)
        if time.monotonic() - start > timeout:
            raise EndpointTimeout("vLLM was not ready in time", f"no answer at {root_url}/health "
                                  f"after {timeout:g} s", where=str(log),
                                  hint="raise --startup-timeout (a first start downloads the weights)")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


_FAILURES = [
    (("out of memory", "No available memory for the cache blocks", "larger than the maximum number of tokens",
      "less than desired CPU memory utilization", "less than requested memory for kv"),
     "not enough memory: lower --max-model-len, --max-images or --max-pixels; on a GPU raise "
     "--gpu-memory-utilization, on a CPU lower --cpu-kv-cache-gib or close other programs"),
    (("Failed to infer device type", "No CUDA GPUs are available", "Found no NVIDIA driver"),
     f"no usable GPU: on a machine without one, install vLLM's CPU build ({CPU_INSTALL}, in the mmcli "
     "checkout); mmcli serve then picks CPU settings by itself"),
    (("Address already in use",), "the port is taken: choose another with --port"),
    (("Cannot assign requested address",),
     "--host is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its interfaces' addresses"),
    # Before the model-name check: an unreachable hub is not a wrong name.
    (("We couldn't connect to 'https://huggingface.co'", "LocalEntryNotFoundError",
      "cannot find the requested files in the local cache", "Failed to resolve 'huggingface.co'"),
     "the weights could not be downloaded: check the network or HF_TOKEN, or serve a local folder "
     "(mmcli serve ./folder)"),
    (("is not a valid model identifier", "Repository Not Found", "gated repo", "401 Client Error"),
     "check the model name; gated models need `hf auth login` and an accepted licence"),
]


def failure_hint(tail: str) -> str:
    """A hint for a vLLM start-up failure judged from its log; '' when the log names no known cause."""
    for needles, hint in _FAILURES:
        if any(needle.lower() in tail.lower() for needle in needles):
            return hint
    return ""


# vLLM's own last word: an exception line ("OSError: ...", "torch.OutOfMemoryError: ...") or an ERROR log
# line, without the "(APIServer pid=1)" and "ERROR 12-03 16:34:47 [file.py:12]" prefixes its logger adds.
_PROCESS = re.compile(r"^\(\w+ pid=\d+\) ")
_LOGGED = re.compile(r"^ERROR(?: [\d-]+ [\d:.]+)?(?: \[[^\]]*\])? +(\S.*)$")
_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Exit)\b.*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def last_error(tail: str, limit: int = 300) -> str:
    """vLLM's last error line in a log's tail (control characters removed, cut at `limit`); '' if none."""
    said = ""
    for line in tail.splitlines():
        line = _PROCESS.sub("", _CONTROL.sub("", line)).rstrip()
        logged = _LOGGED.match(line)
        if logged:
            said = logged.group(1)
        elif _RAISED.match(line):
            said = line
    return said if len(said) <= limit else said[:limit - 1] + "…"


def exit_error(what: str, code: object, log: Path) -> ServeError:
    """The one error for a vLLM that exited: its exit code and own last error line, and a hint with what to
    do (when its log names a known cause) and where its whole log is."""
    tail = log_tail(log, 200)
    said = last_error(tail)
    cause = failure_hint(tail)
    how = f"exit code {code}"
    if isinstance(code, int) and code < 0:  # what Popen reports for a process a signal ended
        # real-time signals (SIGRTMIN+n) are valid but have no name in signal.Signals
        how = f"killed by {signal.Signals(-code).name}" if -code in set(signal.Signals) else f"killed by signal {-code}"
    return ServeError(what, how + (f"; vLLM said: {said}" if said else ""), where=str(log),
                      hint=(f"{cause}; " if cause else "") + f"vLLM's whole log: {log}")
