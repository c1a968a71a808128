"""Start, stop and report the vLLM server mmcli runs, and start it by itself for the local profile."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Optional

from ..errors import MmcliError, ServeError, UsageError
from ..families import DEFAULT_SERVE_MODEL, MODEL_TYPE_FAMILIES, serve_alias
from . import network, process, state as records
from .command_line import (Launcher, ModelChoice, ServeOptions, ServerCommand, build_command, check_options,
                           child_env, choose_model, is_loopback_host, looks_like_path)
from .defaults import DEFAULT_STARTUP_TIMEOUT, DEFAULT_STOP_GRACE, HUB_CHECK_SECONDS
from .locate import locate_vllm, vllm_python
from .state import ServerState

if TYPE_CHECKING:
    from ..settings import Settings
    from ..events import Events



__all__ = ["ServerState", "ensure_local_server", "media_dir", "model_choice", "prepare", "start",
           "status", "status_lines", "stop", "vllm_python"]


def model_choice(spec: str, name: Optional[str] = None, family: Optional[str] = None) -> ModelChoice:
    """Resolve MODEL, looking at the disk for local checkpoints (and their config.json model_type)."""
    path = Path(spec).expanduser()
    local = None
    if serve_alias(spec) is None or looks_like_path(spec):  # an alias wins unless written as a path
        if path.is_dir():
            local = str(path.resolve())
        elif path.exists():
            raise UsageError("not a model directory", where=spec, hint="give the folder that holds config.json")
    return choose_model(spec, local_dir=local, model_type=_model_type(path) if local else None,
                        name=name, family=family)


def _model_type(path: Path) -> Optional[str]:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return model_type if model_type in MODEL_TYPE_FAMILIES else None


def media_dir(path: str) -> str:
    """The resolved --allowed-local-media-path, refused when it would expose / or the home folder."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise UsageError("--allowed-local-media-path must be an existing directory", where=path,
                         hint="give the folder the server may read media files from (made beforehand), "
                              "e.g. --allowed-local-media-path ~/media")
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved in home.parents:
        raise UsageError("refusing --allowed-local-media-path", "it would let the server read "
                         + ("every file" if resolved == Path(resolved.anchor) else "your home folder"),
                         where=str(resolved), hint="name a folder that holds only the media to serve")
    return str(resolved)


@contextmanager
def _interrupt_on_term() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so the child's group is stopped on the way out."""
    def interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _refuse_second_server(directory: Path, command: ServerCommand, environ: Mapping[str, str]) -> None:
    existing = records.running_server(environ)
    if existing is not None:
        raise ServeError("a server started by mmcli is already running",
                         f"{existing.model} at {existing.base_url} (pid {existing.pid})",
                         hint="stop it first with `mmcli serve stop`")
    records.clear_state(directory)  # a stale record of a server that is gone
    network.check_listen(command.host, command.port)


def start(command: ServerCommand, *, detach: bool, timeout: float, grace: float, out: "Events",
          environ: Optional[Mapping[str, str]] = None, show_log: bool = False) -> ServerState:
    """Start vLLM in its own process group and wait for /health; in the foreground, serve until stopped.
    When it fails, the error names its log; `show_log` (--debug) also shows the log's last lines."""
    environ = os.environ if environ is None else environ
    directory = records.ensure_state_dir(environ)
    _refuse_second_server(directory, command, environ)
    key, key_path = records.new_key(directory) if command.needs_key else (None, None)
    log = directory / records.LOG_FILE
    log.write_text("$ " + " ".join(command.argv) + "\n", encoding="utf-8")
    with _interrupt_on_term():
        try:
            proc = process.spawn(command.argv, child_env(command, environ, key), log)
        except ServeError:
            records.clear_state(directory)  # the key of a server that never ran
            raise
        state = ServerState(pid=proc.pid, proc_start=process.proc_start(proc.pid), started=time.time(),
                            model=command.model.served_name, source=command.model.source,
                            family=command.model.family.name, host=command.host, port=command.port,
                            base_url=command.base_url, root_url=command.root_url, log=str(log),
                            key_file=str(key_path) if key_path else None, detached=detach,
                            frame_limit=command.frame_limit, request_mm_kwargs=command.request_mm_kwargs,
                            video_item_tokens=command.video_item_tokens)
        try:
            records.save_state(directory, state)
            out.status(f"starting vLLM: {state.model} ({state.source}) at {state.base_url}, pid {state.pid}; "
                       f"log: {log}")
            if command.cpu_notes:
                out.status("on the CPU: " + "; ".join(command.cpu_notes))
            if key_path:
                out.status(f"API key required (the server listens on {command.host}); it is in {key_path} "
                           "and the local profile uses it by itself")
            waited = process.wait_until_ready(state.root_url, proc.poll, timeout, log, network.healthy,
                                              _watcher(log, out))
        except (MmcliError, KeyboardInterrupt) as exc:
            _abandon(proc, directory, grace, out, log, show_tail=show_log and not isinstance(exc, KeyboardInterrupt))
            raise
        try:  # a Ctrl-C from here on (even before the wait below) must still stop the server's group
            state.ready = True
            records.save_state(directory, state)
            if command.cpu_notes:
                from .cpu import pace

                out.status(pace(command.model.source, command.model.local))
            if detach:
                out.status(f"ready after {waited:.0f} s: {state.base_url} serves {state.model}; "
                           "`mmcli serve stop` stops it")
                return state
            out.status(f"ready after {waited:.0f} s: {state.base_url} serves {state.model}; Ctrl-C stops it")
            code = proc.wait()  # serve until stopped
        except KeyboardInterrupt:
            _shut_down(proc, directory, grace, out)
            raise
        _after_exit(proc, code, state, directory, grace, out, environ, show_log)
    return state


def _watcher(log: Path, out: "Events"):
    """A function that reports vLLM's start-up phases from its log (downloading, loading, ...)."""
    from .logwatch import LogWatcher

    return LogWatcher(log, lambda phase: out.status(f"vLLM: {phase}")).poll


def _abandon(proc, directory: Path, grace: float, out: "Events", log: Path, show_tail: bool) -> None:
    if show_tail:
        _show_tail(out, log)
    _shut_down(proc, directory, grace, out)


def _shut_down(proc, directory: Path, grace: float, out: "Events") -> None:
    """Stop the child's group and forget it; a second Ctrl-C must not leave the engine running."""
    out.status(f"stopping vLLM (pid {proc.pid}; SIGKILL after {grace:g} s)")
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        process.stop_group(proc.pid, grace, reap=proc.poll)
        records.clear_state(directory)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _show_tail(out: "Events", log: Path) -> None:
    tail = process.log_tail(log)
    if tail:
        out.stderr_block(f"--- last lines of {log} ---\n{tail}\n---")


def _after_exit(proc, code: int, state: ServerState, directory: Path, grace: float, out: "Events",
                environ: Mapping[str, str], show_log: bool) -> None:
    """The foreground server's leader exited: stopped by `mmcli serve stop`, or it failed."""
    recorded = records.load_state(environ)
    stopped_elsewhere = recorded is None or recorded.pid != state.pid or recorded.stopping
    process.stop_group(proc.pid, grace, reap=proc.poll)  # whatever the leader left behind
    if stopped_elsewhere:
        out.status("vLLM was stopped by `mmcli serve stop`")
        return
    records.clear_state(directory)
    if show_log:
        _show_tail(out, Path(state.log))
    raise process.exit_error("vLLM exited", code, Path(state.log))


def stop(grace: float, out: "Events", environ: Optional[Mapping[str, str]] = None) -> bool:
    """Stop the server mmcli started (its whole process group); False if none was running."""
    environ = os.environ if environ is None else environ
    directory = records.state_dir(environ)
    state = records.running_server(environ)
    if state is None:
        records.clear_state(directory)
        out.status("no server started by mmcli is running")
        return False
    out.status(f"stopping {state.model} at {state.base_url} (pid {state.pid})")
    state.stopping = True
    records.save_state(directory, state)
    gone = process.stop_group(state.pid, grace)
    records.clear_state(directory)
    if not gone:
        raise ServeError("some vLLM processes survived SIGKILL", f"process group {state.pid}",
                         hint="check with ps and stop them by hand")
    out.status("stopped")
    return True


def status(environ: Optional[Mapping[str, str]] = None) -> dict:
    """What `mmcli serve status` reports about the server mmcli started."""
    environ = os.environ if environ is None else environ
    state = records.running_server(environ)
    if state is None:
        return {"running": False}
    healthy = network.healthy(state.root_url)
    return {"running": True, "healthy": healthy, "ready": state.ready, "model": state.model,
            "source": state.source, "family": state.family, "url": state.base_url, "pid": state.pid,
            "uptime_seconds": round(time.time() - state.started), "detached": state.detached,
            "log": state.log, "key_file": state.key_file}


def launcher_build(launcher: Launcher, environ: Mapping[str, str]):
    """The vLLM build behind a launcher (None when its Python is unknown or has no vLLM)."""
    from .build import vllm_build

    python = launcher.prefix[0] if launcher.module_form else process.shebang_python(launcher.prefix[0])
    return vllm_build(python, environ)


def default_model(device: str) -> str:
    """The model served when none is named: a small one on a CPU, else the alias that fits one GPU."""
    from .cpu import CPU_DEFAULT_MODEL

    return CPU_DEFAULT_MODEL if device == "cpu" else DEFAULT_SERVE_MODEL


def resolve_device(opts: ServeOptions, build) -> ServeOptions:
    """`--device auto` becomes cpu when the vLLM found is the CPU build; no MODEL becomes the default."""
    device = "cpu" if opts.device == "auto" and build is not None and build.device == "cpu" else opts.device
    return replace(opts, device=device, model=opts.model or default_model(device))


def prepare(opts: ServeOptions, launcher: Launcher, build=None) -> ServerCommand:
    """Check the options and build the vLLM command for them (with CPU settings for vLLM's CPU build)."""
    opts = resolve_device(opts, build)
    check_options(opts)
    model = model_choice(opts.model, opts.name, opts.family)
    cpu = None
    if opts.device == "cpu":
        from .cpu import machine_now, plan_cpu

        cpu = plan_cpu(machine_now(), model.source, model.local, kv_cache_gib=opts.cpu_kv_cache_gib,
                       max_model_len=opts.max_model_len)
    return replace(build_command(opts, model, launcher, cpu), cpu_notes=cpu.notes if cpu else ())


def ensure_local_server(settings: "Settings", out: "Events", environ: Optional[Mapping[str, str]] = None) -> None:
    """Auto-start: when the local profile's endpoint is down and vLLM is installed, start it detached."""
    environ = os.environ if environ is None else environ
    endpoint = settings.endpoint
    if endpoint.profile.name != "local":
        return
    recorded = records.running_server(environ)
    if recorded is not None and recorded.base_url == endpoint.base_url:
        _wait_for_recorded(recorded, out)
        return
    address = profile_address(endpoint)
    if not settings.autostart or address is None or network.port_open(*address):
        return
    try:
        launcher = locate_vllm(vllm_python(None, environ, settings.vllm_python), environ)
        opts = ServeOptions(model=settings.model or "", host=address[0], port=address[1])
        command = prepare(opts, launcher, launcher_build(launcher, environ))
    except MmcliError:
        return  # nothing to start with: the request fails with the usual "cannot reach" and its hint
    _refuse_unloadable(command, endpoint.base_url, environ)
    out.status(f"nothing answers at {endpoint.base_url}; starting {command.model.served_name} with vLLM in the "
               "background (--no-autostart, MMCLI_AUTOSTART=0 or `autostart = false` turn this off)")
    start(command, detach=True, timeout=DEFAULT_STARTUP_TIMEOUT, grace=DEFAULT_STOP_GRACE, out=out,
          environ=environ)


def _refuse_unloadable(command: ServerCommand, base_url: str, environ: Mapping[str, str]) -> None:
    """A model neither on this disk, nor in the hub's cache, nor reachable on the hub is refused at once: vLLM
    would try the hub for a minute before failing the same way."""
    from ..hints import NO_HUB
    from .hub import hub_blocked

    why = hub_blocked(command.model.source, command.model.local, environ, timeout=HUB_CHECK_SECONDS)
    if why is not None:
        raise ServeError(f"nothing answers at {base_url}, and auto-start cannot serve {command.model.served_name} "
                         f"({command.model.source})", why,
                         hint=NO_HUB + "; or pick another endpoint with --base-url / --profile")


def profile_address(endpoint) -> Optional[tuple[str, int]]:
    """(host, port) to serve on when the endpoint is the local profile's own loopback http address."""
    from urllib.parse import urlsplit

    if endpoint.base_url != endpoint.profile.base_url.rstrip("/"):
        return None  # --base-url or OPENAI_BASE_URL point elsewhere: not ours to start
    parts = urlsplit(endpoint.base_url)
    host = parts.hostname or ""
    if parts.scheme != "http" or parts.path != "/v1" or not is_loopback_host(host):
        return None
    return host, parts.port or 80


def _wait_for_recorded(state: ServerState, out: "Events") -> None:
    if network.healthy(state.root_url):
        return
    log = Path(state.log)
    out.status(f"waiting for {state.model} at {state.base_url} to be ready (log: {log})")

    def exited() -> Optional[str]:
        return None if process.pid_alive(state.pid, state.proc_start) else "unknown"

    # a failure names the log (its lines are vLLM's own, tracebacks and all: not shown here)
    process.wait_until_ready(state.root_url, exited, DEFAULT_STARTUP_TIMEOUT, log, network.healthy,
                             _watcher(log, out))


def describe_uptime(seconds: int) -> str:
    """`1h 02m 03s`-style uptime."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def status_lines(report: dict) -> list[str]:
    """The plain-text `mmcli serve status` report."""
    if not report["running"]:
        return ["no server started by mmcli is running"]
    health = "ok" if report["healthy"] else ("starting" if not report["ready"] else "not answering")
    lines = [f"model:   {report['model']} ({report['source']})", f"url:     {report['url']}",
             f"pid:     {report['pid']}" + ("" if report["detached"] else " (foreground)"),
             f"uptime:  {describe_uptime(report['uptime_seconds'])}", f"health:  {health}",
             f"log:     {report['log']}"]
    if report["key_file"]:
        lines.append(f"api key: {report['key_file']}")
    return lines

