"""`--engine ray --backend vllm`: Ray starts vLLM engines itself (`ray.data.llm`'s vLLMEngineProcessorConfig,
--concurrency replicas) instead of sending to a server. The jobs are prepared and finished in Ray's workers by
mmcli.batch.ray_vllm_rows (the code of a local run); the rows come back to the results file, or to Parquet, as
in the HTTP mode (mmcli.batch.ray_engine's RayJob).

The configuration is checked against the cluster before any job is prepared: GPUs (replicas x tensor
parallel), or with --device cpu one CPU per engine and vLLM's CPU build on the nodes.
"""

from __future__ import annotations

import math
import os
import pickle
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..errors import UsageError
from .ray_job import RayJob, kept_ids, quiet_data
from .work import BatchFlags, EngineOptions, Work

if TYPE_CHECKING:
    from ..core.endpoint import Target
    from ..events import Display
    from ..settings import Settings

ENGINE_HINT = ("leave out --backend vllm to send to a vLLM server over HTTP (mmcli serve, or any "
               "OpenAI-compatible URL), give --ray-address of a Ray cluster with GPU nodes, or run the engines "
               "on CPUs with --device cpu (vLLM's CPU build, slow)")
BATCH = 16  # jobs per engine call; each batch's lines come back to the driver together


def engine_config(ray: Any, model: str, replicas: int, options: Optional[EngineOptions] = None) -> Any:
    """The vLLMEngineProcessorConfig Ray runs: `replicas` vLLM engines of `model`, fed with the messages and
    images mmcli prepared (already at the model's grid), so Ray's own media stage is off."""
    from ray.data.llm import vLLMEngineProcessorConfig

    options = options or EngineOptions()
    engine_kwargs: dict = {"tensor_parallel_size": options.tensor_parallel_size}
    if options.max_model_len is not None:
        engine_kwargs["max_model_len"] = options.max_model_len
    engine_kwargs.update(dict(options.engine_args))
    placement = None
    if options.device == "cpu":
        # Ray's default bundle is {"GPU": 1, "CPU": 1} per engine worker (vllm_engine_stage's
        # _ray_scheduling_strategy_fn and post_init's num_gpus): CPU bundles ask for no GPU.
        placement = {"bundles": [{"CPU": 1}] * options.tensor_parallel_size}
    return vLLMEngineProcessorConfig(
        model_source=model, concurrency=replicas, batch_size=BATCH, engine_kwargs=engine_kwargs,
        placement_group_config=placement, prepare_multimodal_stage={"enabled": False}, chat_template_stage=True,
        tokenize_stage=False, detokenize_stage=False,  # the engine tokenizes and detokenizes as a server does
        should_continue_on_error=True,  # a failed row is a failed line, never a stopped run
        log_engine_metrics=False)


def missing_for_engine(ray: Any, config: Any, device: str = "auto") -> list[str]:
    """What the cluster and this machine lack to run `config`; empty when it can run."""
    import importlib.util

    missing = []
    tensor = int(config.engine_kwargs.get("tensor_parallel_size", 1))
    replicas = config.concurrency if isinstance(config.concurrency, int) else config.concurrency[0]
    resources = ray.cluster_resources()
    if device == "cpu":
        cpus = int(resources.get("CPU", 0))
        if cpus < tensor * replicas + 1:  # one more for Ray's own stages (the preparation, the chat template)
            missing.append(f"{tensor * replicas + 1} CPU(s) ({replicas} engine(s) x tensor parallel {tensor}, and one "
                           f"for the jobs' preparation); the Ray cluster has {cpus}")
    elif int(resources.get("GPU", 0)) < tensor * replicas:
        missing.append(f"{tensor * replicas} GPU(s) ({replicas} replica(s) x tensor parallel {tensor}); "
                       f"the Ray cluster has {int(resources.get('GPU', 0))}")
    for module, what in (("vllm", "vLLM"), ("transformers", "transformers")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{what} (pip install 'ray[llm]', or vLLM's CPU build for --device cpu)")
    return missing


def engine_job(ray: Any, works: list[Work], settings: "Settings", flags: BatchFlags, out: "Display"
               ) -> Callable[[], "EngineJob"]:
    """Check what can be checked before Ray starts (the model, the options); the function that, with Ray up,
    checks the cluster and builds the run."""
    from ..core.endpoint import connect, without_media_uuids

    model = settings.model
    if not model:
        raise UsageError("--backend vllm needs --model: the hub id or folder Ray's vLLM engines load",
                         hint="pass --model Qwen/Qwen2.5-VL-7B-Instruct (and --family when the name does not say it)")
    options = flags.engine_options or EngineOptions()
    local = model.startswith(("/", "./", "../", "~"))
    if local and not os.path.isfile(os.path.join(os.path.expanduser(model), "config.json")):
        what = "has no config.json" if os.path.isdir(os.path.expanduser(model)) else "does not exist"
        raise UsageError(f"the model folder {what}", where=model,
                         hint="give a folder with the model's config.json and weights (on every node), or a hub id")
    if options.device == "cpu" and options.tensor_parallel_size != 1:
        raise UsageError("--device cpu runs whole engines, one per CPU bundle", hint="leave out --tensor-parallel-size")
    target = without_media_uuids(connect(settings, out, dry_run=True))  # no server: nothing is asked
    if target.family_source == "default":
        out.warn(f"preparing for family {target.family.name}: the model name {model!r} names no family; pass "
                 "--family (e.g. --family qwen2.5-vl) to size images for its grid")
    replicas = flags.concurrency or 1

    def build() -> EngineJob:
        config = engine_config(ray, os.path.expanduser(model) if local else model, replicas, options)
        missing = missing_for_engine(ray, config, options.device)
        if missing:
            raise UsageError("--backend vllm cannot run here: it needs " + "; and ".join(missing), where=model,
                             hint=ENGINE_HINT)
        return EngineJob(ray, works, target, flags, config)

    return build


class EngineJob(RayJob):
    """The jobs as a Ray Dataset through Ray's vLLM processor: prepared before the engines, finished after."""

    def __init__(self, ray: Any, works: list[Work], target: "Target", flags: BatchFlags, config: Any) -> None:
        super().__init__(ray, works, [target], flags, config.batch_size, None)
        self.config = config

    def dataset(self, previous: dict[str, dict]) -> Any:
        """Rows of pickled jobs, prepared (EngineRows), answered by the engines and finished (finished_row)."""
        from ray.data.llm import build_processor

        from .ray_vllm_rows import EngineRows, finished_row

        quiet_data(self.ray)
        rows = [{"work": pickle.dumps(work)} for work in self.works]
        blocks = max(1, math.ceil(len(rows) / self.config.batch_size))  # a block's lines come back together
        try:
            processor = build_processor(self.config, preprocess=EngineRows(self.targets[0], kept_ids(previous),
                                                                           self.flags.retry_failed),
                                        postprocess=finished_row)
        except (OSError, ValueError) as exc:  # the model's tokenizer and config are read here, on this machine
            said = str(exc).strip().splitlines()
            raise UsageError("cannot read the model's configuration", said[0][:300] if said else type(exc).__name__,
                             where=self.config.model_source,
                             hint="give a model folder that holds config.json and the tokenizer, or a hub id this "
                                  "machine can download") from None
        return processor(self.ray.data.from_items(rows, override_num_blocks=blocks))
