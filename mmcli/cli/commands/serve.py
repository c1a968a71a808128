"""`mmcli serve`: a local vLLM server for a vision model; `mmcli serve status` and `mmcli serve stop`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mmcli.server.defaults import (
    DEFAULT_DEVICE,
    DEFAULT_HOST,
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_VIDEOS,
    DEFAULT_PORT,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STOP_GRACE,
)
from ..options import RunState, note_debug

SERVER = "Server"
MEDIA = "Media limits"
HARDWARE = "Hardware"
SAFETY = "Safety"
RUN = "Running"

# `status` and `stop` are words MODEL cannot be (write ./status for a folder of that name): one
# command keeps `mmcli serve MODEL` and `mmcli serve --list` working next to them.
ACTIONS = ("status", "stop")
# Options that mean something to `status` / `stop`; any other given with them is a mistake.
ACTION_OPTIONS = {"status": {"json_output", "debug"}, "stop": {"stop_timeout", "debug"}}

HELP = """Start a local vLLM server (OpenAI-compatible) for a vision model.

MODEL is an alias (see --list), a Hugging Face id (org/name) or a local model folder. The server listens on 127.0.0.1:8000 unless told otherwise, serves images resized to the same grid the client uses, fetches no remote media and logs no requests. The client commands (mmcli ask, ...) find a server started here by themselves.

`mmcli serve status` reports on the running server; `mmcli serve stop` stops it with all its processes. Arguments after -- go to vLLM unchanged.

vLLM's structured output stays on (--schema, and detect's guided boxes, use it); its backend is tuned with vLLM's --structured-outputs-config after --, e.g. '{"backend": "xgrammar", "disable_any_whitespace": true}' so a weak model cannot pad its JSON with whitespace until the token limit."""

EPILOG = """Examples:

  mmcli serve qwen2.5-vl

  mmcli serve qwen2.5-vl-3b --max-images 8 --max-pixels 1003520

  mmcli serve ./my-finetune --tensor-parallel-size 2 -- --quantization fp8

  mmcli serve qwen2.5-vl --detach && mmcli ask photo.jpg "what's here"

  mmcli serve status; mmcli serve stop

  mmcli serve qwen2.5-vl --dry-run

  mmcli serve qwen2.5-vl -- --structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'

  mmcli serve MrLight/dse-qwen2-2b-mrl-v1 --embed && mmcli embed photos/ --index photos.idx"""


ModelArg = Annotated[Optional[str], typer.Argument(
    metavar="MODEL|status|stop", show_default=False,
    help="Alias, Hugging Face id or local folder; or `status` / `stop`. [default: qwen2.5-vl; qwen2-vl-2b "
         "with vLLM's CPU build or --device cpu]")]

VllmArgsArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="-- VLLM_ARGS", show_default=False, help="Passed to vLLM unchanged (after --).")]

ListAliasesOpt = Annotated[bool, typer.Option("--list", help="List the model aliases and exit.")]

HostOpt = Annotated[str, typer.Option(
    "--host", metavar="ADDRESS", rich_help_panel=SERVER,
    help="Address to listen on. Anything but loopback requires an API key, generated for you.")]

PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, metavar="PORT", rich_help_panel=SERVER,
                                       help="Port to listen on.")]

NameOpt = Annotated[Optional[str], typer.Option(
    "--name", metavar="NAME", rich_help_panel=SERVER, help="Served model name. [default: the alias, folder name or id]")]

FamilyOpt = Annotated[Optional[str], typer.Option(
    "--family", metavar="FAMILY", rich_help_panel=SERVER,
    help="Model family (qwen2-vl, qwen2.5-vl, qwen3-vl, generic). [default: judged from the model]")]

MaxModelLenOpt = Annotated[Optional[int], typer.Option(
    "--max-model-len", min=1, metavar="TOKENS", rich_help_panel=SERVER,
    help="Context length. [default: 32768 for aliases, else the model's]")]

MaxImagesOpt = Annotated[int, typer.Option("--max-images", min=0, metavar="N", rich_help_panel=MEDIA, help="Images per request.")]

MaxVideosOpt = Annotated[int, typer.Option("--max-videos", min=0, metavar="N", rich_help_panel=MEDIA, help="Videos per request.")]

MaxPixelsOpt = Annotated[Optional[int], typer.Option(
    "--max-pixels", min=1, metavar="N", rich_help_panel=MEDIA,
    help="Most pixels per image on the server. [default: the client's, 1280*28*28 (1280*32*32 Qwen3-VL)]")]

GpuMemoryUtilizationOpt = Annotated[Optional[float], typer.Option(
    "--gpu-memory-utilization", metavar="FRACTION", rich_help_panel=HARDWARE, help="Fraction of GPU memory vLLM may use.")]

TensorParallelSizeOpt = Annotated[Optional[int], typer.Option(
    "--tensor-parallel-size", min=1, metavar="N", rich_help_panel=HARDWARE, help="Split the model over N GPUs.")]

DataParallelSizeOpt = Annotated[Optional[int], typer.Option(
    "--data-parallel-size", min=1, metavar="N", rich_help_panel=HARDWARE,
    help="Run N copies of the model behind one port, one per GPU (vLLM balances the requests); for one "
         "machine with several GPUs. Several machines: mmcli --base-url A --base-url B ... --each.")]

DeviceOpt = Annotated[str, typer.Option(
    "--device", metavar="auto|cuda|cpu", rich_help_panel=HARDWARE, help="auto, cuda or cpu (vLLM's CPU build).")]

CpuKvCacheGibOpt = Annotated[Optional[int], typer.Option(
    "--cpu-kv-cache-gib", min=1, metavar="GIB", rich_help_panel=HARDWARE,
    help="KV cache size in GiB with --device cpu (VLLM_CPU_KVCACHE_SPACE).")]

AllowedLocalMediaPathOpt = Annotated[Optional[str], typer.Option(
    "--allowed-local-media-path", metavar="DIR", rich_help_panel=SAFETY,
    help="Let requests read file:// media from DIR (never / or your home folder). [default: none]")]

AllowMediaDomainOpt = Annotated[Optional[list[str]], typer.Option(
    "--allow-media-domain", metavar="DOMAIN", rich_help_panel=SAFETY,
    help="Let the server fetch http(s) media from DOMAIN (repeatable). [default: fetch nothing]")]

RequireKeyOpt = Annotated[bool, typer.Option(
    "--require-key", rich_help_panel=SAFETY,
    help="Require an API key even on loopback (other users of this machine can reach 127.0.0.1).")]

VllmPythonOpt = Annotated[Optional[str], typer.Option(
    "--vllm-python", metavar="PATH", rich_help_panel=RUN,
    help="Python (or venv folder) that has vLLM. [default: MMCLI_VLLM_PYTHON, config vllm_python, "
         "`vllm` on PATH, this Python]")]

DetachOpt = Annotated[bool, typer.Option(
    "--detach", rich_help_panel=RUN, help="Run in the background; stop with `mmcli serve stop`.")]

StartupTimeoutOpt = Annotated[float, typer.Option(
    "--startup-timeout", min=1, metavar="SECONDS", rich_help_panel=RUN, help="Seconds to wait for the server to be ready.")]

StopTimeoutOpt = Annotated[float, typer.Option(
    "--stop-timeout", min=0, metavar="SECONDS", rich_help_panel=RUN,
    help="Seconds between SIGTERM and SIGKILL when stopping.")]

EmbedOpt = Annotated[bool, typer.Option(
    "--embed", rich_help_panel=SERVER,
    help="Serve MODEL as an embedding model for mmcli embed / search (vLLM --runner pooling).")]

PresetOpt = Annotated[Optional[str], typer.Option(
    "--preset", metavar="vlm2vec|dse-qwen2|gme|plain", rich_help_panel=SERVER,
    help="With --embed: the chat template to serve (vLLM's for VLM2Vec and DSE; DSE's for GME). "
         "[default: judged from MODEL, else the model's own]")]

DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", rich_help_panel=RUN, help="Print the vLLM command and environment; start nothing.")]

JsonOutputOpt = Annotated[bool, typer.Option("--json", rich_help_panel=RUN, help="JSON output for --list and status.")]

DebugOpt = Annotated[bool, typer.Option("--debug", rich_help_panel=RUN, callback=note_debug,
                                        help="Show tracebacks for errors, and the end of vLLM's log when it fails.")]


def serve(
    ctx: typer.Context,
    model: ModelArg = None,
    vllm_args: VllmArgsArg = None,
    list_aliases: ListAliasesOpt = False,
    host: HostOpt = DEFAULT_HOST,
    port: PortOpt = DEFAULT_PORT,
    name: NameOpt = None,
    family: FamilyOpt = None,
    max_model_len: MaxModelLenOpt = None,
    max_images: MaxImagesOpt = DEFAULT_MAX_IMAGES,
    max_videos: MaxVideosOpt = DEFAULT_MAX_VIDEOS,
    max_pixels: MaxPixelsOpt = None,
    gpu_memory_utilization: GpuMemoryUtilizationOpt = None,
    tensor_parallel_size: TensorParallelSizeOpt = None,
    data_parallel_size: DataParallelSizeOpt = None,
    device: DeviceOpt = DEFAULT_DEVICE,
    cpu_kv_cache_gib: CpuKvCacheGibOpt = None,
    allowed_local_media_path: AllowedLocalMediaPathOpt = None,
    allow_media_domain: AllowMediaDomainOpt = None,
    require_key: RequireKeyOpt = False,
    embed: EmbedOpt = False,
    preset: PresetOpt = None,
    vllm_python: VllmPythonOpt = None,
    detach: DetachOpt = False,
    startup_timeout: StartupTimeoutOpt = DEFAULT_STARTUP_TIMEOUT,
    stop_timeout: StopTimeoutOpt = DEFAULT_STOP_GRACE,
    dry_run: DryRunOpt = False,
    json_output: JsonOutputOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Start a local vLLM server for a vision model."""
    import os

    from ..output.render import Output
    from mmcli.server import launch
    from mmcli.server.command_line import ServeOptions

    out = Output(json_mode=json_output)
    if list_aliases:
        return _show_aliases(out)
    if model in ACTIONS:
        _refuse_other_options(ctx, model, vllm_args)
        return _run_action(model, out, stop_timeout)
    media_path = launch.media_dir(allowed_local_media_path) if allowed_local_media_path else None
    opts = ServeOptions(model=model or "", host=host, port=port, name=name, family=family, max_model_len=max_model_len,
                        max_images=max_images, max_videos=max_videos, max_pixels=max_pixels,
                        gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                        data_parallel_size=data_parallel_size, device=device, cpu_kv_cache_gib=cpu_kv_cache_gib, allowed_local_media_path=media_path,
                        allow_media_domains=tuple(allow_media_domain or ()), require_key=require_key,
                        extra_args=tuple(vllm_args or ()), embed=embed, preset=preset)
    launcher = _launcher(vllm_python, dry_run, out)
    build = launch.launcher_build(launcher, os.environ)
    command = launch.prepare(opts, launcher, build)
    if not model:
        out.status(f"no MODEL given: serving {command.model.served_name} ({command.model.source})")
    if dry_run:
        return _show_dry_run(command, out)
    launch.start(command, detach=detach, timeout=startup_timeout, grace=stop_timeout, out=out,
                 show_log=debug or (isinstance(ctx.obj, RunState) and ctx.obj.debug))  # --debug, or MMCLI_DEBUG


def _launcher(flag: Optional[str], dry_run: bool, out):
    import os

    from mmcli.settings import configured_vllm_python
    from mmcli.server.command_line import Launcher
    from mmcli.server.locate import locate_vllm, vllm_python
    from mmcli.errors import ServeError

    try:
        return locate_vllm(vllm_python(flag, os.environ, configured_vllm_python(os.environ)), os.environ)
    except ServeError as exc:
        if not dry_run:
            raise
        out.warn(f"{exc.message()}; showing the command with `vllm` as a placeholder")
        return Launcher.script("vllm")


def _refuse_other_options(ctx: typer.Context, action: str, vllm_args: Optional[list[str]]) -> None:
    from mmcli.errors import UsageError

    given = [p for p in ctx.params if p not in ("model", "vllm_args") and _given(ctx, p)]
    stray = [p for p in given if p not in ACTION_OPTIONS[action]]
    if stray or vllm_args:
        what = "--" + stray[0].replace("_", "-") if stray else " ".join(vllm_args or ())
        raise UsageError(f"`mmcli serve {action}` does not take {what}",
                         hint="options for starting a server go with mmcli serve MODEL")


def _given(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _run_action(action: str, out, stop_timeout: float) -> None:
    from mmcli.server import launch

    if action == "stop":
        launch.stop(stop_timeout, out)
        return
    report = launch.status()
    if out.json_mode:
        out.emit_json(report)
    else:
        for line in launch.status_lines(report):
            out.line(line)
    if not report.get("healthy"):
        raise typer.Exit(5)  # scripts: `mmcli serve status && ...`


def _show_aliases(out) -> None:
    from mmcli.server.command_line import alias_rows

    rows = alias_rows()
    if out.json_mode:
        out.emit_json(rows)
        return
    width = max(len(r["alias"]) for r in rows)
    model_width = max(len(r["model"]) for r in rows)
    for r in rows:
        note = f"  ({r['note']})" if r["note"] else ""
        out.line(f"{r['alias']:<{width}}  {r['model']:<{model_width}}  {r['family']:<10}{note}".rstrip())
    out.line()
    out.line("Any Hugging Face id (org/name) or local model folder works too.")


def _show_dry_run(command, out) -> None:
    import os

    from mmcli.server.command_line import shell_text
    from mmcli.server.state import KEY_FILE, state_dir

    key_file = str(state_dir(os.environ) / KEY_FILE) if command.needs_key else None
    out.line(shell_text(command, os.environ, key_file))
    if command.cpu_notes:
        out.status("on the CPU: " + "; ".join(command.cpu_notes))
    out.status(f"clients reach it at {command.base_url} as model {command.model.served_name} "
               f"(family {command.model.family.name}); nothing was started")
