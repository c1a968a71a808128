"""`--engine ray --backend vllm`: Ray starts vLLM replicas itself (`ray.data.llm`'s vLLMEngineProcessorConfig)
instead of sending to a server. The configuration is built from the run's model and concurrency and checked
against the cluster before any job is prepared: it needs GPUs, and Ray's LLM extra (vLLM, transformers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..errors import UsageError

if TYPE_CHECKING:
    from ..settings import CommonOptions
    from ..events import Display
    from .work import BatchFlags, Work

ENGINE_HINT = ("leave out --backend vllm to send to a vLLM server over HTTP (mmcli serve, or any "
               "OpenAI-compatible URL), or give --ray-address of a Ray cluster with GPU nodes")


def engine_config(ray: Any, model: str, replicas: int, tensor_parallel: int = 1) -> Any:
    """The vLLMEngineProcessorConfig Ray would run: `replicas` vLLM engines of `model`, images from the
    messages mmcli prepared (already at the model's grid)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    return vLLMEngineProcessorConfig(
        model_source=model, concurrency=replicas, batch_size=16,
        engine_kwargs={"tensor_parallel_size": tensor_parallel},
        prepare_multimodal_stage={"enabled": True}, chat_template_stage=True, tokenize_stage=True,
        detokenize_stage=True, should_continue_on_error=True)  # a failed row is a failed line


def missing_for_engine(ray: Any, config: Any) -> list[str]:
    """What the cluster and this machine lack to run `config`; empty when it can run."""
    import importlib.util

    missing = []
    gpus = int(ray.cluster_resources().get("GPU", 0))
    tensor = int(config.engine_kwargs.get("tensor_parallel_size", 1))
    needed = tensor * (config.concurrency if isinstance(config.concurrency, int) else config.concurrency[0])
    if gpus < needed:
        missing.append(f"{needed} GPU(s) ({config.concurrency} replica(s) x tensor parallel {tensor}); "
                       f"the Ray cluster has {gpus}")
    for module, what in (("vllm", "vLLM"), ("transformers", "transformers")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{what} (pip install 'ray[llm]')")
    return missing


def run_engine_mode(ray: Any, works: list["Work"], opts: "CommonOptions", flags: "BatchFlags", out: "Display",
                    environ: Optional[Mapping[str, str]] = None) -> Any:
    """Build and check the engine configuration; refuse the run, before any job is prepared, with what is
    missing."""
    from ..settings import resolve_settings
    from .ray_start import start_ray

    settings = resolve_settings(opts.endpoint, environ)
    model = settings.model
    if not model:
        raise UsageError("--backend vllm needs --model: the hub id or folder Ray's vLLM engines load",
                         hint="pass --model Qwen/Qwen2.5-VL-7B-Instruct (and --family when the name does not say it)")
    config = engine_config(ray, model, flags.concurrency or 1)
    started = start_ray(ray, flags.ray_address, environ)
    try:
        missing = missing_for_engine(ray, config)
    finally:
        if started:
            ray.shutdown()
    if missing:
        raise UsageError("--backend vllm cannot run here: it needs " + "; and ".join(missing), where=model,
                         hint=ENGINE_HINT)
    raise UsageError("--backend vllm is checked but not run by this version", where=model,
                     hint="send to the cluster's vLLM servers over HTTP: leave out --backend vllm and give "
                          "their URL with --base-url")
