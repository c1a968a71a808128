"""`mmcli doctor`: what this machine has for the main job (ask a model about a file), one check at a
time, each with what to do. Nothing here prints: the command shows the checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Mapping, Optional

from ..errors import ExitCode, MmcliError

if TYPE_CHECKING:
    from ..settings import EndpointFlags, Settings

PROBE_TIMEOUT = 3.0  # seconds for the endpoint to answer: doctor must be quick when nothing is there
CHECKOUT_HINT = "in the mmcli checkout"


@dataclass
class Check:
    """One line of the report: what was looked at, what was found, and what to do about it."""

    name: str
    status: str  # ok, info (fine either way), warn (some tasks will not work), fail (the main job cannot run)
    detail: str
    fix: str = ""
    exit_code: int = 0  # for a failed check: the exit status a command would end with

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Machine:
    """What the checks learnt that later checks depend on."""

    settings: Optional["Settings"] = None
    vllm: Optional[object] = None  # VllmBuild
    gpus: int = 0


def check_python() -> Check:
    """The Python running mmcli, and mmcli's version."""
    from .. import __version__

    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 10):
        return Check("python", "fail", f"Python {version}", "mmcli needs Python 3.10 or newer", int(ExitCode.USAGE))
    return Check("python", "ok", f"Python {version} ({sys.executable}), mmcli {__version__}")


def check_gpu(found: Machine, environ: Mapping[str, str]) -> Check:
    """An NVIDIA GPU and its driver, or none (then vLLM's CPU build or a remote endpoint)."""
    from ..server.build import nvidia_gpus

    gpus, why = nvidia_gpus(environ)
    found.gpus = len(gpus)
    if not gpus:
        return Check("gpu", "info", f"none: {why}",
                     "no GPU is needed: serve with vLLM's CPU build (docs/install.md) or use a remote endpoint")
    names = ", ".join(f"{g.name} ({g.memory_mib} MiB)" if g.memory_mib else g.name for g in gpus)
    cuda = f", CUDA {gpus[0].cuda}" if gpus[0].cuda else ""
    return Check("gpu", "ok", f"{names}; driver {gpus[0].driver}{cuda}")


def check_vllm(found: Machine, environ: Mapping[str, str]) -> Check:
    """Where vLLM is, which build (GPU or CPU) and its version."""
    from ..server.build import vllm_build
    from ..server.locate import locate_vllm, vllm_python
    from ..server.process import shebang_python
    from ..hints import CPU_INSTALL, GPU_INSTALL

    configured = found.settings.vllm_python if found.settings else None
    install = (f"{CHECKOUT_HINT}: {GPU_INSTALL} (GPU) or {CPU_INSTALL} (no GPU; docs/install.md), "
               "or set vllm_python in the config")
    try:
        launcher = locate_vllm(vllm_python(None, environ, configured), environ)
    except MmcliError as exc:
        return Check("vllm", "warn", f"not found: {exc.why or exc.what}",
                     install + "; not needed for a remote endpoint")
    python = launcher.prefix[0] if launcher.module_form else shebang_python(launcher.prefix[0])
    build = vllm_build(python, environ)
    if build is None:
        return Check("vllm", "info", f"found at {launcher.prefix[0]}; its build and version are unknown")
    found.vllm = build
    detail = f"{build.name} {build.version}, {build.device.upper()} build, in {build.python}"
    if build.device == "gpu" and found.gpus == 0:
        return Check("vllm", "warn", detail + "; this machine has no NVIDIA GPU for it",
                     "install vLLM's CPU build (docs/install.md) or serve on a machine with a GPU")
    return Check("vllm", "ok", detail)


def _version_of(argv: list[str], environ: Mapping[str, str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, env=dict(environ))
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (done.stderr or done.stdout).strip().splitlines()
    return text[0] if text else ""


def check_poppler(environ: Mapping[str, str]) -> Check:
    """poppler (pdftoppm, pdfinfo), which PDFs need."""
    path = environ.get("PATH", os.defpath)
    missing = [tool for tool in ("pdftoppm", "pdfinfo", "pdftotext") if shutil.which(tool, path=path) is None]
    if missing:
        return Check("poppler", "warn", f"not found ({', '.join(missing)} missing): PDFs cannot be read",
                     "install poppler: apt install poppler-utils, dnf install poppler-utils or brew install poppler")
    pdftoppm = shutil.which("pdftoppm", path=path) or "pdftoppm"
    return Check("poppler", "ok", _version_of([pdftoppm, "-v"], environ) or f"found: {pdftoppm}")


def check_av() -> Check:
    """PyAV and the FFmpeg libraries it bundles (audio, video sound tracks)."""
    try:
        import av
    except ImportError as exc:
        return Check("pyav", "warn", f"cannot import av: {exc}", f"{CHECKOUT_HINT}: pip install -e .")
    codec = getattr(av, "library_versions", {}).get("libavcodec")
    ffmpeg = ".".join(map(str, codec)) if codec else "unknown"
    return Check("pyav", "ok", f"PyAV {av.__version__}, libavcodec {ffmpeg}")


def check_ray() -> Check:
    """Ray Data, for --engine ray; looked up, not imported (doctor stays quick)."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return Check("ray", "info", "not installed: --engine ray is not available (local runs need none)",
                     f"to run many-file jobs on Ray, {CHECKOUT_HINT}: pip install -e '.[ray]'")
    version = importlib.metadata.version("ray")
    if importlib.util.find_spec("aiohttp") is None or importlib.util.find_spec("pyarrow") is None:
        return Check("ray", "warn", f"Ray {version} without Ray Data: --engine ray cannot run",
                     f"{CHECKOUT_HINT}: pip install -e '.[ray]'")
    return Check("ray", "ok", f"Ray {version} with Ray Data: --engine ray is available")


def check_config(found: Machine, flags: "EndpointFlags", environ: Mapping[str, str]) -> Check:
    """The config file: where, and whether it (with the flags and environment) makes valid settings."""
    from ..settings import config_path, resolve_settings

    path = config_path(environ)
    try:
        found.settings = resolve_settings(flags, environ)
    except MmcliError as exc:
        return Check("config", "fail", exc.message(), exc.hint or f"fix {path}", int(exc.exit_code))
    where = str(path) if path.is_file() else f"none at {path} (the built-in defaults)"
    return Check("config", "ok", f"{where}; profile {found.settings.endpoint.profile.name}")


def check_key(found: Machine, environ: Mapping[str, str]) -> Check:
    """Whether an API key is there for the profile's endpoint (named, never shown)."""
    from ..settings import PLACEHOLDER_KEY
    from ..urls import masked_url

    endpoint = found.settings.endpoint
    if endpoint.api_key == PLACEHOLDER_KEY:
        return Check("api key", "ok", "none needed (an endpoint on this machine)")
    if endpoint.api_key is not None:
        named = [name for name in (endpoint.profile.api_key_env, "MMCLI_API_KEY", "OPENAI_API_KEY")
                 if name and environ.get(name) == endpoint.api_key]
        return Check("api key", "ok", "present" + (f" (in {named[0]})" if named else ""))
    try:
        endpoint.require_key()
    except MmcliError as exc:
        return Check("api key", "fail", f"{exc.what} ({masked_url(endpoint.base_url)})", exc.hint,
                     int(exc.exit_code))
    return Check("api key", "ok", "present")


def check_state(environ: Mapping[str, str]) -> Check:
    """The state folder (server record, probe cache, keys) can be written."""
    import tempfile

    from ..server.state import ensure_state_dir, state_dir

    try:
        folder = ensure_state_dir(environ)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("state", "warn", f"{state_dir(environ)} cannot be written: {exc.strerror or exc}",
                     "make it writable, or set XDG_STATE_HOME to a folder that is")
    return Check("state", "ok", f"{folder} is writable")


def check_server(environ: Mapping[str, str]) -> Check:
    """The server `mmcli serve` started, if any, and its health."""
    from ..server import launch

    report = launch.status(environ)
    if not report["running"]:
        return Check("server", "info", "no server started by mmcli is running")
    health = "healthy" if report["healthy"] else ("starting" if not report["ready"] else "not answering")
    detail = f"{report['model']} ({report['source']}) at {report['url']}, pid {report['pid']}: {health}"
    if report["healthy"]:
        return Check("server", "ok", detail)
    return Check("server", "warn", detail, f"see its log: {report['log']}; `mmcli serve stop` stops it")
