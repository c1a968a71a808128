"""vLLM's command line and environment for `mmcli serve`: which model, which flags (pure functions)."""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from ..urls import is_loopback_host
from ..errors import UsageError
from ..families import FAMILIES, MODEL_TYPE_FAMILIES, SERVE_ALIASES, Family, ServeAlias, family_for_model, serve_alias
from .defaults import DEFAULT_DEVICE, DEFAULT_HOST, DEFAULT_MAX_IMAGES, DEFAULT_MAX_VIDEOS, DEFAULT_PORT
from .videocache import video_item_tokens

if TYPE_CHECKING:
    from .cpu import CpuPlan

MODULE_ENTRY = "vllm.entrypoints.openai.api_server"
# vLLM fetches http(s) media only from hosts on its allow-list; a name under the reserved
# .invalid TLD (RFC 2606) matches no real host, so by default the server fetches nothing.
NO_REMOTE_MEDIA = "remote-media-disabled.invalid"
DEVICES = ("auto", "cuda", "cpu")
# vLLM cuts a frame list to its first 32 frames unless told otherwise: -1 keeps them all, so the frames
# a client planned (and paid the upload for) are the frames the model sees.
MEDIA_IO_KWARGS = {"video": {"num_frames": -1}}
# disable_any_whitespace needs a named backend (vLLM refuses it with "auto"); xgrammar is the one vLLM picks first.
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}
_TRUST_HINT = "mmcli serve allows per-request media_io_kwargs while the server listens on loopback only"
# Flags mmcli sets itself; passing them after `--` would silently undo a safety default or make
# what mmcli records about the server (and tells clients) wrong.
RESERVED_FLAGS = {
    "--host": "use mmcli's --host",
    "--port": "use mmcli's --port",
    "--api-key": "keys go through the environment, never the command line: use --require-key",
    "--allowed-local-media-path": "use mmcli's --allowed-local-media-path (it refuses / and your home)",
    "--allowed-media-domains": "use --allow-media-domain DOMAIN",
    "--served-model-name": "use --name",
    "--model": "give the model as mmcli serve's MODEL argument",
    "--media-io-kwargs": "mmcli serve sets it to " + json.dumps(MEDIA_IO_KWARGS) + " and tells clients so",
    "--trust-request-mm-kwargs": _TRUST_HINT,
    "--no-trust-request-mm-kwargs": _TRUST_HINT,
    "--config": "give vLLM's options after -- one by one: mmcli cannot check what a config file sets",
}


@dataclass(frozen=True)
class ServeOptions:
    """What the user asked `mmcli serve` for (flags, validated by check_options)."""

    model: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    name: Optional[str] = None
    family: Optional[str] = None
    max_model_len: Optional[int] = None
    max_images: int = DEFAULT_MAX_IMAGES
    max_videos: int = DEFAULT_MAX_VIDEOS
    max_pixels: Optional[int] = None
    gpu_memory_utilization: Optional[float] = None
    tensor_parallel_size: Optional[int] = None
    data_parallel_size: Optional[int] = None  # vLLM's own replicas behind one port (-dp)
    device: str = DEFAULT_DEVICE
    cpu_kv_cache_gib: Optional[int] = None
    allowed_local_media_path: Optional[str] = None  # already resolved and checked
    allow_media_domains: tuple[str, ...] = ()
    require_key: bool = False
    extra_args: tuple[str, ...] = ()
    embed: bool = False  # serve as an embedding (pooling) model
    preset: Optional[str] = None  # embedding preset whose chat template the server uses; None: judged from MODEL


@dataclass(frozen=True)
class ModelChoice:
    """The model vLLM loads, the name it serves it under, and its family."""

    source: str  # a Hugging Face id or an absolute directory
    served_name: str
    family: Family
    alias: Optional[ServeAlias] = None
    local: bool = False


@dataclass(frozen=True)
class Launcher:
    """How vLLM is started: its `vllm` script, or `python -m` its API server module."""

    prefix: tuple[str, ...]
    module_form: bool

    @classmethod
    def script(cls, path: str) -> "Launcher":
        """`vllm serve MODEL ...`."""
        return cls((path, "serve"), module_form=False)

    @classmethod
    def module(cls, python: str) -> "Launcher":
        """`python -m vllm.entrypoints.openai.api_server --model MODEL ...` (works where the script is broken)."""
        return cls((python, "-m", MODULE_ENTRY), module_form=True)


@dataclass(frozen=True)
class ServerCommand:
    """The vLLM child process: argv, environment changes, and where clients reach it."""

    argv: list[str]
    env: dict[str, str]  # always set (safety)
    env_defaults: dict[str, str]  # set unless the user's environment says otherwise
    model: ModelChoice
    host: str
    port: int
    needs_key: bool
    frame_limit: Optional[int] = None  # frames of a frame list the server keeps; None: all
    request_mm_kwargs: bool = False  # whether requests may carry media_io_kwargs
    video_item_tokens: Optional[int] = None  # the most visual tokens one video may take; None: not known
    cpu_notes: tuple[str, ...] = ()  # what the CPU settings were sized from, shown at start

    @property
    def root_url(self) -> str:
        """Where this machine reaches the server (for /health)."""
        return f"http://{client_host(self.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL clients on this machine use."""
        return self.root_url + "/v1"


def client_host(host: str) -> str:
    """The address a local client uses for a server bound to `host` (bracketed for IPv6)."""
    bare = host.strip("[]")
    if bare in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bare == "::":
        return "[::1]"
    return f"[{bare}]" if ":" in bare else bare


def looks_like_path(spec: str) -> bool:
    """Whether a MODEL argument is written as a file-system path rather than a name or hub id."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec


def choose_model(spec: str, *, local_dir: Optional[str], model_type: Optional[str],
                 name: Optional[str] = None, family: Optional[str] = None) -> ModelChoice:
    """Resolve MODEL: an alias, a local directory (`local_dir`, absolute) or a Hugging Face id."""
    if family is not None and family not in FAMILIES:
        raise UsageError("unknown model family", where=family, hint="known families: " + ", ".join(FAMILIES))
    alias = None if local_dir else serve_alias(spec)
    if alias is not None:
        fam = FAMILIES[family or alias.family]
        return ModelChoice(alias.hf_id, name or alias.name, fam, alias=alias)
    if local_dir is not None:
        judged = MODEL_TYPE_FAMILIES.get(model_type or "")
        fam = FAMILIES[family] if family else (FAMILIES[judged] if judged else family_for_model(spec))
        return ModelChoice(local_dir, name or Path(local_dir).name, fam, local=True)
    if looks_like_path(spec):
        raise UsageError("model directory not found", where=spec,
                         hint="give an existing directory, a Hugging Face id (org/name) or an alias (mmcli serve --list)")
    if spec.count("/") != 1 or spec.startswith("/") or spec.endswith("/"):
        raise UsageError("unknown model", where=spec, hint=_alias_hint(spec))
    return ModelChoice(spec, name or spec, FAMILIES[family] if family else family_for_model(spec))


def _alias_hint(spec: str) -> str:
    import difflib

    close = difflib.get_close_matches(spec.lower(), list(SERVE_ALIASES), n=3, cutoff=0.6)
    known = f"did you mean {', '.join(close)}? " if close else ""
    return known + "see mmcli serve --list, or give a Hugging Face id (org/name) or a local directory"


def check_options(opts: ServeOptions) -> None:
    """Refuse flag combinations that cannot work, before anything starts."""
    if opts.device not in DEVICES:
        raise UsageError("unknown device", where=opts.device, hint="use " + ", ".join(DEVICES))
    if opts.device == "cpu" and opts.gpu_memory_utilization is not None:
        raise UsageError("--gpu-memory-utilization has no effect with --device cpu",
                         hint="size vLLM's CPU KV cache with --cpu-kv-cache-gib instead")
    if opts.cpu_kv_cache_gib is not None and opts.device != "cpu":
        raise UsageError("--cpu-kv-cache-gib needs --device cpu")
    if opts.gpu_memory_utilization is not None and not 0 < opts.gpu_memory_utilization <= 1:
        raise UsageError("invalid --gpu-memory-utilization", f"{opts.gpu_memory_utilization:g}",
                         hint="a fraction of GPU memory, e.g. 0.9")
    for domain in opts.allow_media_domains:
        if not domain or "/" in domain or ":" in domain or " " in domain:
            raise UsageError("invalid --allow-media-domain", where=domain, hint="a host name, e.g. upload.wikimedia.org")
    if opts.preset is not None:
        if not opts.embed:
            raise UsageError("--preset needs --embed", hint="mmcli serve MODEL --embed --preset dse-qwen2")
        from ..presets import get_preset

        get_preset(opts.preset)
    check_passthrough(opts.extra_args)


def vllm_option_name(arg: str) -> Optional[str]:
    """The option vLLM's parser reads in `arg` (`--api_key=x` and `--api-key.0 x` -> `--api-key`); None for a value."""
    if not arg.startswith("--") or arg == "--":
        return None
    # Its parser turns `_` into `-` up to the first `.` (a dotted JSON field) and splits `--opt=value`.
    name = arg.split("=", 1)[0].split(".", 1)[0]
    return "--" + name[2:].replace("_", "-")


def check_passthrough(extra: tuple[str, ...]) -> None:
    """Refuse vLLM flags after `--` that would override mmcli's own (and safety) settings."""
    for arg in extra:
        name = vllm_option_name(arg)
        if name is None:
            continue
        # argparse takes any unique prefix of an option (allow_abbrev): `--hos` is `--host`.
        reserved = next((flag for flag in RESERVED_FLAGS if flag.startswith(name)), None)
        if reserved is not None:
            given = arg.split("=", 1)[0]
            why = f"{reserved} is set by mmcli serve" if given == reserved else \
                f"vLLM would read {given} as {reserved}, which mmcli serve sets"
            raise UsageError("refusing a vLLM flag after --", why, where=given, hint=RESERVED_FLAGS[reserved])


def grid_size(tokens: int, factor: int) -> tuple[int, int]:
    """(width, height) of the on-grid image with the most visual tokens up to `tokens`, nearest to square."""
    for count in range(max(tokens, 1), 0, -1):
        height = next(d for d in range(math.isqrt(count), 0, -1) if count % d == 0)
        width = count // height
        if width / height <= 200:  # Qwen's processors refuse more extreme aspect ratios
            return width * factor, height * factor
    return factor, factor


def image_max_pixels(opts: ServeOptions, family: Family) -> Optional[int]:
    """The per-image pixel cap the server uses: the client's default unless --max-pixels says otherwise."""
    if family.factor is None:
        return None
    return opts.max_pixels or family.max_pixels


def mm_limits(opts: ServeOptions, family: Family) -> dict:
    """--limit-mm-per-prompt: counts, plus dummy sizes that bound what vLLM reserves at start-up."""
    max_pixels = image_max_pixels(opts, family)
    if max_pixels is None or family.factor is None:
        return {"image": opts.max_images, "video": opts.max_videos}
    factor = family.factor
    width, height = grid_size(max_pixels // (factor * factor), factor)
    video_width, video_height = grid_size(family.video_max_pixels // (factor * factor), factor)
    return {"image": {"count": opts.max_images, "width": width, "height": height},
            "video": {"count": opts.max_videos, "width": video_width, "height": video_height}}


def mm_processor_kwargs(opts: ServeOptions, family: Family) -> Optional[dict]:
    """--mm-processor-kwargs: the server's image max_pixels equal to the client's, so both use one grid."""
    max_pixels = image_max_pixels(opts, family)
    if max_pixels is None:
        return None
    if family.name == "qwen3-vl":
        # Qwen3-VL reads a flat max_pixels as the whole video's budget too: scope it to images.
        return {"images_kwargs": {"max_pixels": max_pixels}}
    return {"max_pixels": max_pixels}


def build_command(opts: ServeOptions, model: ModelChoice, launcher: Launcher,
                  cpu: Optional["CpuPlan"] = None) -> ServerCommand:
    """The complete vLLM command line and environment for `opts` (no API key in either); `cpu`: the
    settings for vLLM's CPU build (with --device cpu)."""
    argv = list(launcher.prefix) + (["--model", model.source] if launcher.module_form else [model.source])
    argv += ["--served-model-name", model.served_name, "--host", opts.host, "--port", str(opts.port)]
    max_model_len = opts.max_model_len or (cpu.max_model_len if cpu else None) or \
        (model.alias.max_model_len if model.alias else None)
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    video_tokens, cache_flags = (None, []) if opts.embed else \
        video_item_tokens(model.family, max_model_len, opts.extra_args)
    argv += cache_flags
    argv += ["--limit-mm-per-prompt", json.dumps(mm_limits(opts, model.family))]
    processor_kwargs = mm_processor_kwargs(opts, model.family)
    if processor_kwargs:
        argv += ["--mm-processor-kwargs", json.dumps(processor_kwargs)]
    if opts.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", f"{opts.gpu_memory_utilization:g}"]
    if opts.tensor_parallel_size:
        argv += ["--tensor-parallel-size", str(opts.tensor_parallel_size)]
    if opts.data_parallel_size and opts.data_parallel_size > 1:
        argv += ["--data-parallel-size", str(opts.data_parallel_size)]
    if opts.device == "cpu":
        argv.append("--enforce-eager")  # graph capture/compilation on CPU costs minutes and buys little
    if opts.allowed_local_media_path:
        argv += ["--allowed-local-media-path", opts.allowed_local_media_path]
    argv += ["--allowed-media-domains", *(opts.allow_media_domains or (NO_REMOTE_MEDIA,))]
    argv += ["--media-io-kwargs", json.dumps(MEDIA_IO_KWARGS)]
    loopback = is_loopback_host(opts.host)
    if loopback:
        # Per-request media_io_kwargs (the real timing of the frames sent) reopen processor paths that
        # vLLM closed by default; only this machine's users can reach a loopback server.
        argv.append("--trust-request-mm-kwargs")
    argv += ["--no-enable-log-requests", "--disable-uvicorn-access-log"]
    argv += embedding_flags(opts, model)
    argv += [] if opts.embed else structured_output_flags(opts.extra_args)
    argv += list(opts.extra_args)
    env = {"VLLM_MEDIA_URL_ALLOW_REDIRECTS": "0"}
    kv_cache_gib = opts.cpu_kv_cache_gib if opts.cpu_kv_cache_gib is not None else (cpu.kv_cache_gib if cpu else None)
    if kv_cache_gib is not None:
        # An explicit KV cache also keeps the CPU build from reserving 92% of all memory at start-up.
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
    defaults = {"VLLM_NO_USAGE_STATS": "1"}
    if cpu is not None:
        defaults["VLLM_CPU_OMP_THREADS_BIND"] = cpu.threads_bind
    if model.local:
        defaults["HF_HUB_OFFLINE"] = "1"  # a local checkpoint needs nothing from the hub
    return ServerCommand(argv=argv, env=env, env_defaults=defaults, model=model, host=opts.host,
                         port=opts.port, needs_key=opts.require_key or not loopback,
                         frame_limit=None, request_mm_kwargs=loopback, video_item_tokens=video_tokens)


def structured_output_flags(extra: tuple[str, ...]) -> list[str]:
    """Guided answers without padding: JSON grammars allow whitespace anywhere, and a small model (or any
    model on a CPU) can fill its whole token budget with it. Left out when the user sets the option after --."""
    if any((vllm_option_name(arg) or "").startswith("--structured-outputs") for arg in extra):
        return []
    return ["--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS)]


def embedding_flags(opts: ServeOptions, model: ModelChoice) -> list[str]:
    """`--runner pooling` and the preset's chat template (given inline: vLLM reads a template with
    braces as the template itself) when serving an embedding model; nothing otherwise."""
    if not opts.embed:
        return []
    from ..presets import chat_template, get_preset, guess_preset

    preset = get_preset(opts.preset) if opts.preset else guess_preset(model.source)
    template = chat_template(preset)
    return ["--runner", "pooling"] + (["--chat-template", template] if template else [])


def child_env(command: ServerCommand, inherited: Mapping[str, str], api_key: Optional[str]) -> dict[str, str]:
    """The child's environment: the user's, minus a stray key and PYTHONHOME, plus mmcli's settings."""
    env = {k: v for k, v in inherited.items() if k not in ("VLLM_API_KEY", "PYTHONHOME")}
    for name, value in command.env_defaults.items():
        env.setdefault(name, value)
    env.update(command.env)
    if api_key is not None:
        env["VLLM_API_KEY"] = api_key
    return env


def env_changes(command: ServerCommand, inherited: Mapping[str, str]) -> dict[str, str]:
    """The variables mmcli adds or changes (what --dry-run shows), without any key."""
    changes = {k: v for k, v in command.env_defaults.items() if k not in inherited}
    changes.update(command.env)
    return dict(sorted(changes.items()))


def shell_text(command: ServerCommand, inherited: Mapping[str, str], key_file: Optional[str]) -> str:
    """The command as a copy-pasteable shell line; the key is read from its file, never shown."""
    lines = []
    if command.needs_key:
        lines.append(f'VLLM_API_KEY="$(cat {shlex.quote(key_file or "KEY_FILE")})"')
    lines += [f"{name}={shlex.quote(value)}" for name, value in env_changes(command, inherited).items()]
    first, rest = _split_flags(command.argv)
    lines.append(" ".join(map(shlex.quote, first)))
    lines += ["  " + " ".join(map(shlex.quote, group)) for group in rest]
    return " \\\n".join(lines)


def _split_flags(argv: list[str]) -> tuple[list[str], list[list[str]]]:
    first: list[str] = []
    groups: list[list[str]] = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            groups.append([arg])
        elif groups:
            groups[-1].append(arg)
        else:
            first.append(arg)
    return first, groups


def alias_rows() -> list[dict]:
    """One row per serve alias, for --list."""
    return [{"alias": a.name, "model": a.hf_id, "family": a.family, "max_model_len": a.max_model_len,
             "note": a.note} for a in SERVE_ALIASES.values()]
