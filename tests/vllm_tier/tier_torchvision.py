"""Make PyPI's CUDA-built torchvision load on a CPU-only torch.

torchvision's wheel links its two native extensions (``_C.so`` and
``image.so``) against ``libtorch_cuda.so`` and ``libc10_cuda.so``, which the
CPU build of torch does not ship, so ``import torchvision`` leaves its
operators unregistered and vLLM fails with
``operator torchvision::nms does not exist``.  The CUDA entry points are only
reached from CUDA kernels, never on the CPU, so a small stub library that
defines them (aborting if ever called) is enough: the extensions are relinked
with patchelf to load the stub instead, and ``libcudart`` is pointed at the
copy bundled in ``torchvision.libs``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

STUB_NAME = "libmmcli_cuda_stub.so"
EXTENSIONS = ("_C.so", "image.so")
CUDA_LIBS = ("libc10_cuda.so", "libtorch_cuda.so")
# Mangled prefixes of the c10::cuda and at::cuda namespaces (const methods too).
_CUDA_SYMBOL = re.compile(r"^_ZNK?(?:3c10|2at)4cuda")


class PatchError(RuntimeError):
    """Raised when torchvision cannot be relinked."""


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PatchError(f"{' '.join(argv)} failed:\n{proc.stderr.strip()}")
    return proc.stdout


def undefined_cuda_symbols(library: Path) -> dict[str, str]:
    """Map each undefined c10::cuda / at::cuda symbol of ``library`` to FUNC or OBJECT."""
    symbols: dict[str, str] = {}
    for line in _run(["readelf", "-W", "--dyn-syms", str(library)]).splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[6] != "UND":
            continue
        name = fields[7].split("@", 1)[0]
        if _CUDA_SYMBOL.match(name):
            symbols[name] = fields[3]
    return symbols


def stub_source(symbols: dict[str, str]) -> str:
    """C source defining every symbol: functions abort, objects are zeroed storage."""
    lines = ["/* CUDA entry points of torchvision, never reached on a CPU-only torch. */",
             "#include <stdlib.h>", ""]
    for name in sorted(symbols):
        if symbols[name] == "OBJECT":
            lines.append(f"__attribute__((aligned(16))) char {name}[64];")
        else:
            lines.append(f"void {name}(void) {{ abort(); }}")
    return "\n".join(lines) + "\n"


def _needed(library: Path) -> list[str]:
    out = _run(["readelf", "-W", "-d", str(library)])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def _bundled_cudart(site_packages: Path) -> str:
    found = sorted((site_packages / "torchvision.libs").glob("libcudart*.so*"))
    if not found:
        raise PatchError("torchvision.libs has no bundled libcudart")
    return found[0].name


def _relink(library: Path, patchelf: Path, cudart: str) -> None:
    needed = _needed(library)
    argv = [str(patchelf)]
    for lib in CUDA_LIBS:
        if lib in needed:
            argv += ["--remove-needed", lib]
    for lib in needed:
        if lib.startswith("libcudart.so"):
            argv += ["--replace-needed", lib, cudart]
    argv += ["--add-needed", STUB_NAME,
             "--set-rpath", "$ORIGIN:$ORIGIN/../torchvision.libs", str(library)]
    _run(argv)


def patch_torchvision(site_packages: Path, patchelf: Path, work_dir: Path) -> list[str]:
    """Build the stub, relink torchvision's extensions to it; return the stubbed symbols."""
    package = site_packages / "torchvision"
    libraries = [package / name for name in EXTENSIONS]
    missing = [str(lib) for lib in libraries if not lib.is_file()]
    if missing:
        raise PatchError(f"torchvision extensions not found: {missing}")
    if not any(lib in _needed(path) for path in libraries for lib in CUDA_LIBS):
        return []  # already a CPU build or already patched
    symbols: dict[str, str] = {}
    for library in libraries:
        symbols.update(undefined_cuda_symbols(library))
    source = work_dir / "cuda_stub.c"
    source.write_text(stub_source(symbols), encoding="utf-8")
    _run(["gcc", "-shared", "-fPIC", "-O1", f"-Wl,-soname,{STUB_NAME}",
          "-o", str(package / STUB_NAME), str(source)])
    cudart = _bundled_cudart(site_packages)
    for library in libraries:
        _relink(library, patchelf, cudart)
    return sorted(symbols)
