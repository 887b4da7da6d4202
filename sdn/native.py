"""The node system's compiled kernel (``node_system.c``), built with the system's C compiler at first use.

The SDN's per-bin 6x6 solves are the bulk of a render. In PyTorch each elementwise step is a pass
over memory; the C kernel keeps a bin's quantities in registers and runs several bins per SIMD
instruction: a render's forward and backward pass takes half the time (``benchmarks/README.md``).
It runs CPU tensors only; CUDA tensors, and machines without a C compiler, use the PyTorch
implementation in :mod:`sdn.node_system`. Both are tested against the dense 30x30 wave system.

The library is compiled once per source, compiler and CPU into the cache directory
(``$SDN_CACHE_DIR``, else ``$XDG_CACHE_HOME/sdn`` or ``~/.cache/sdn``), in well under a second.
Set ``SDN_NATIVE=0`` to use PyTorch everywhere.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("node_system.c")
#: Flags tried in order: the CPU's own vector instructions, then portable code.
FLAG_SETS = (["-O3", "-march=native"], ["-O3"])


def enabled() -> bool:
    """Whether the compiled kernel is wanted (``SDN_NATIVE`` is not ``0``)."""
    return os.environ.get("SDN_NATIVE", "1") != "0"


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$SDN_CACHE_DIR``, else the user's cache directory."""
    if "SDN_CACHE_DIR" in os.environ:
        return Path(os.environ["SDN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sdn"


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags (a library built with -march=native runs only there)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    return "".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _compile(compiler: str, target: Path) -> None:
    """Build the library at ``target`` atomically (a temporary file renamed: parallel builds are safe)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in FLAG_SETS:
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as handle:
            temporary = Path(handle.name)
        command = [compiler, *flags, "-std=gnu11", "-shared", "-fPIC", str(SOURCE), "-o", str(temporary)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            os.replace(temporary, target)
            return
        temporary.unlink(missing_ok=True)
        errors.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}")
    raise OSError(f"{compiler} could not build {SOURCE.name}: {errors[-1]}")


@lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        warnings.warn(f"no C compiler ({compiler!r}) found: the SDN runs its PyTorch node system, about 2x "
                      "slower on CPU; install gcc or set CC", RuntimeWarning, stacklevel=3)
        return None
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode() + _cpu_signature().encode()
                         + repr(FLAG_SETS).encode()).hexdigest()[:16]
    target = cache_dir() / f"node_system-{key}.so"
    try:
        if not target.exists():
            _compile(compiler, target)
        library = ctypes.CDLL(str(target))
    except OSError as error:
        warnings.warn(f"{error}; the SDN runs its PyTorch node system, about 2x slower on CPU",
                      RuntimeWarning, stacklevel=3)
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.sdn_node_system.argtypes = [size, ctypes.c_int] + [pointer] * 12
    library.sdn_node_system.restype = None
    return library


def available(tensor: torch.Tensor) -> bool:
    """Whether :func:`node_system` can run on ``tensor``'s device (CPU, kernel wanted and built)."""
    return tensor.device.type == "cpu" and enabled() and _library() is not None


def node_system(pair, walls, source, mic, junction, extraction, out, derivatives=None) -> None:
    """Run the kernel on contiguous CPU tensors, writing ``out`` and, if given, the ``derivatives``.

    Parameters
    ----------
    pair, walls, source, mic : complex tensor, shapes (15, F), (6, F), (6, F), (6, F)
        As :class:`sdn.node_system.NodeSystem`, for one row of F bins; complex64 or complex128.
    junction, extraction : real tensor, shape (6, 6)
    out : complex tensor, shape (F,)
        Y per bin, written.
    derivatives : tuple of complex tensors or None
        ``(d_pair (15, F), d_walls (6, F), d_source (6, F), d_mic (6, F), d_weights (6, 6, F))``,
        written (see :class:`sdn.node_system.NodeSystem`).
    """
    inputs = [t.contiguous() for t in (pair, walls, source, mic)]
    weights = [t.detach().to(torch.float64).contiguous() for t in (junction, extraction)]
    written = [out, *(derivatives or ())]
    assert all(t.is_contiguous() and t.dtype == out.dtype for t in inputs + written)
    pointers = [t.data_ptr() for t in inputs + weights + written] + [None] * (5 if derivatives is None else 0)
    _library().sdn_node_system(out.shape[-1], out.dtype == torch.complex64, *pointers)
