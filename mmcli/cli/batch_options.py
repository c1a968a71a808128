"""The options of many-job runs (--each, --concurrency, -o, --retry-failed, ...), declared once."""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

MANY = "Many files"


class EngineName(str, Enum):
    """Where a many-job run's jobs run."""

    local = "local"
    ray = "ray"


class Device(str, Enum):
    """Where Ray's vLLM engines run."""

    auto = "auto"
    cuda = "cuda"
    cpu = "cpu"


class RayBackend(str, Enum):
    """How Ray's workers get answers."""

    http = "http"
    vllm = "vllm"

PARAMETERS: dict[str, tuple[object, object]] = {
    "each": (Annotated[bool, typer.Option(
        "--each", rich_help_panel=MANY,
        help="Each input is its own job, all with the same prompt; a directory means its media files. "
             "Results: one JSON line per job, on stdout or in -o FILE (resumed when run again).")], False),
    "recursive": (Annotated[bool, typer.Option(
        "--recursive", "-r", rich_help_panel=MANY, help="With --each: also the files in subdirectories.")], False),
    "concurrency": (Annotated[Optional[int], typer.Option(
        "--concurrency", "-j", min=1, max=256, metavar="N", rich_help_panel=MANY, show_default=False,
        help="Jobs at once. [default: the profile's; local 8, remote 4]")], None),
    "retry_failed": (Annotated[bool, typer.Option(
        "--retry-failed", rich_help_panel=MANY,
        help="With -o: run again the jobs whose lines say they failed again (done jobs are skipped).")],
        False),
    "export": (Annotated[Optional[tuple[str, Path]], typer.Option(
        "--export", metavar="openai-batch FILE.jsonl", rich_help_panel=MANY, show_default=False,
        help="Write the requests to FILE.jsonl as OpenAI Batch API input (and "
             "FILE.manifest.json) instead of sending them; needs --model and --family, as no endpoint is "
             "asked; mmcli batch collect reads the output back.")], None),
    "batch_max_mb": (Annotated[float, typer.Option(
        "--batch-max-mb", min=1.0, metavar="MB", rich_help_panel=MANY,
        help="Split exported files at this size (Parasail takes 100 MB, OpenAI 200 MB) and at 50,000 lines.")],
        100.0),
    "engine": (Annotated[EngineName, typer.Option(
        "--engine", metavar="local|ray", rich_help_panel=MANY,
        help="Where the jobs run: this process's workers, or Ray Data's workers (a local Ray, or the "
             "cluster --ray-address or RAY_ADDRESS names; needs the ray extra). With ray, -o NAME.parquet "
             "writes Parquet files into that folder or URI.")], EngineName.local),
    "ray_address": (Annotated[Optional[str], typer.Option(
        "--ray-address", metavar="ADDR", rich_help_panel=MANY, show_default=False,
        help="With --engine ray: the Ray cluster to join (its head's HOST:6379). "
             "[default: RAY_ADDRESS, else a local Ray]")], None),
    "backend": (Annotated[RayBackend, typer.Option(
        "--backend", metavar="http|vllm", rich_help_panel=MANY,
        help="With --engine ray: send to --base-url over HTTP, or let Ray start vLLM engines of --model "
             "itself (--concurrency engines; GPUs, or --device cpu).")], RayBackend.http),
    "tensor_parallel_size": (Annotated[int, typer.Option(
        "--tensor-parallel-size", min=1, metavar="N", rich_help_panel=MANY,
        help="With --backend vllm: split each engine over N GPUs.")], 1),
    "max_model_len": (Annotated[Optional[int], typer.Option(
        "--max-model-len", min=1, metavar="TOKENS", rich_help_panel=MANY, show_default=False,
        help="With --backend vllm: the engines' context length. [default: the model's]")], None),
    "device": (Annotated[Device, typer.Option(
        "--device", metavar="auto|cuda|cpu", rich_help_panel=MANY,
        help="With --backend vllm: the engines' device; cpu needs vLLM's CPU build on the nodes.")], Device.auto),
    "engine_arg": (Annotated[Optional[list[str]], typer.Option(
        "--engine-arg", metavar="KEY=VALUE", rich_help_panel=MANY, show_default=False,
        help="With --backend vllm: one of vLLM's engine arguments (as in vllm.AsyncEngineArgs; VALUE as "
             "JSON, else text), e.g. dtype=bfloat16 or enforce_eager=true; repeat for more.")], None),
}
RESULTS = ("output", (Annotated[Optional[Path], typer.Option(
    "--output", "-o", metavar="FILE.jsonl", rich_help_panel=MANY, show_default=False,
    help="Write one JSON line per job here, each flushed as it finishes; a rerun skips the "
         "jobs already done.")], None))


def with_batch_options(results_file: bool = True, each: bool = True) -> Callable[[Callable], Callable]:
    """Add the many-job options; the command receives them as one `batch: BatchFlags` argument.

    `results_file=False` for a command with its own -o (detect: -o DIR holds results.jsonl);
    `each=False` for mmcli batch, whose every line is a job anyway."""
    names = dict(PARAMETERS, **({RESULTS[0]: RESULTS[1]} if results_file else {}))
    if not each:
        names = {name: value for name, value in names.items() if name not in ("each", "recursive")}

    def decorate(func: Callable) -> Callable:
        from .options import spliced

        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
                 for name, (annotation, default) in names.items()]

        @functools.wraps(func)
        def command(**kwargs):
            values = {name: kwargs.pop(name) for name in names}
            if not each:
                values.update(each=True, recursive=False)
            return func(**kwargs, batch=_flags(values))

        return spliced(func, command, added, drop="batch", before="opts")

    return decorate


def _flags(values: dict):
    from ..batch.work import BatchFlags
    from ..errors import UsageError

    export = values["export"]
    if export is not None and export[0] != "openai-batch":
        raise UsageError("unknown export format", where=export[0], hint="use --export openai-batch FILE.jsonl")
    values.update(engine=EngineName(values["engine"]).value, backend=RayBackend(values["backend"]).value)
    if values["engine"] == "local" and (values["ray_address"] or values["backend"] != "http"):
        raise UsageError("--ray-address and --backend work with --engine ray", hint="add --engine ray")
    engine_options = _engine_options(values)
    if values["engine"] == "ray" and export is not None:
        raise UsageError("--export writes the requests without running them", hint="leave out --engine ray")
    if not values["each"]:
        given = [flag for flag, on in (("--recursive", values["recursive"]), ("--concurrency", values["concurrency"]),
                                       ("--retry-failed", values["retry_failed"]), ("--export", values["export"]),
                                       ("--engine", values["engine"] != "local"),
                                       ("-o", values.get("output"))) if on]
        if given:
            raise UsageError(f"{given[0]} works with --each", hint="add --each to run each input as its own job")
    return BatchFlags(each=values["each"], concurrency=values["concurrency"], output=values.get("output"),
                      retry_failed=values["retry_failed"], recursive=values["recursive"],
                      export=export[0] if export else None, export_path=export[1] if export else None, batch_max_mb=values["batch_max_mb"],
                      engine=values["engine"], ray_address=values["ray_address"], backend=values["backend"],
                      engine_options=engine_options)


def _engine_options(values: dict):
    """--backend vllm's engine options, refused without it."""
    import json

    from ..batch.work import EngineOptions
    from ..errors import UsageError

    device = Device(values["device"]).value
    given = [flag for flag, on in (("--tensor-parallel-size", values["tensor_parallel_size"] != 1),
                                   ("--max-model-len", values["max_model_len"] is not None),
                                   ("--device", device != "auto"), ("--engine-arg", values["engine_arg"])) if on]
    if values["backend"] != "vllm":
        if given:
            raise UsageError(f"{given[0]} works with --engine ray --backend vllm",
                             hint="add --engine ray --backend vllm, or leave it out")
        return None
    pairs = []
    for text in values["engine_arg"] or []:
        key, equals, raw = text.partition("=")
        if not equals or not key.strip().isidentifier():
            raise UsageError("--engine-arg takes KEY=VALUE", where=text,
                             hint="e.g. --engine-arg dtype=bfloat16 (KEY as in vllm.AsyncEngineArgs)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # plain text: a dtype, a quantization method, ...
        pairs.append((key.strip(), value))
    return EngineOptions(tensor_parallel_size=values["tensor_parallel_size"], max_model_len=values["max_model_len"],
                         device=device, engine_args=tuple(pairs))
