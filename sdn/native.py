"""Compiled kernels, built with the system's C compiler at first use.

Two loops dominate a training step on CPU, and in PyTorch every elementwise step of them is a
pass over memory. Written in C, they keep their quantities in registers and run several bins or
taps per SIMD instruction (figures in ``benchmarks/README.md``):

- ``node_system.c`` (with ``node_system_backward.h``): the SDN's per-bin 6x6 solves and their
  derivatives (:mod:`sdn.node_system`), and the backward pass that scales the derivatives by the
  incoming gradient and sums the weights' gradients over the bins; a render's forward and
  backward pass takes 0.7 of the time. Tested, like the PyTorch implementation, against the dense
  30x30 wave system and by gradcheck.
- ``echo_density.c`` (with ``echo_density_kernel.h``): the soft echo-density profile of the
  paper's windows and its loss with the exact gradient (:mod:`sdn.echo_density`); the loss's
  forward and backward pass takes a sixth of the time. Tested, like the PyTorch
  implementation, against the released code's definition written as a loop, and by gradcheck.

They run CPU tensors only; CUDA tensors, and machines without a C compiler, use the PyTorch
implementations. With several torch threads (``torch.set_num_threads``), a kernel's bins or
windows are shared out among that many threads.

The library is compiled once per source, compiler and CPU into the cache directory
(``$SDN_CACHE_DIR``, else ``$XDG_CACHE_HOME/sdn`` or ``~/.cache/sdn``), in well under a second.
Set ``SDN_NATIVE=0`` to use PyTorch everywhere.
"""
from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import torch

#: Compiled together into one library; the header is part of the cache key.
SOURCES = tuple(Path(__file__).with_name(name) for name in ("node_system.c", "echo_density.c"))
HEADERS = tuple(Path(__file__).with_name(name) for name in ("echo_density_kernel.h", "node_system_backward.h"))
#: Flags tried in order: the CPU's own vector instructions, then portable code.
FLAG_SETS = (["-O3", "-march=native"], ["-O3"])
#: What runs instead when the library cannot be built.
FALLBACK = "the node system and the echo-density loss run in PyTorch, 2-7x slower on CPU"


def enabled() -> bool:
    """Whether the compiled kernels are wanted (``SDN_NATIVE`` is not ``0``)."""
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
        command = [compiler, *flags, "-std=gnu11", "-shared", "-fPIC", *map(str, SOURCES), "-lm", "-o", str(temporary)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            os.replace(temporary, target)
            return
        temporary.unlink(missing_ok=True)
        errors.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}")
    raise OSError(f"{compiler} could not build {', '.join(path.name for path in SOURCES)}: {errors[-1]}")


@lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        warnings.warn(f"no C compiler ({compiler!r}) found: {FALLBACK}; install gcc or set CC", RuntimeWarning,
                      stacklevel=3)
        return None
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    sources = b"".join(path.read_bytes() for path in SOURCES + HEADERS)
    key = hashlib.sha256(sources + version.encode() + _cpu_signature().encode() + repr(FLAG_SETS).encode()).hexdigest()[:16]
    target = cache_dir() / f"sdn-{key}.so"
    try:
        if not target.exists():
            _compile(compiler, target)
        library = ctypes.CDLL(str(target))
    except OSError as error:
        warnings.warn(f"{error}; {FALLBACK}", RuntimeWarning, stacklevel=3)
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.sdn_node_system.argtypes = [size] * 3 + [ctypes.c_int] + [pointer] * 12
    library.sdn_node_system.restype = None
    for name in ("sdn_node_system_backward_f32", "sdn_node_system_backward_f64"):
        getattr(library, name).argtypes = [size] * 3 + [pointer] * 12
        getattr(library, name).restype = None
    for name in ("sdn_soft_echo_density_f32", "sdn_soft_echo_density_f64"):
        getattr(library, name).argtypes = [size] * 5 + [pointer] * 5 + [ctypes.c_double] + [pointer] * 2
        getattr(library, name).restype = None
    return library


#: Parts per thread when work is shared out: the calling thread takes on the parts of a thread
#: that wakes late (waking an idle core can take milliseconds on a virtual machine).
PARTS_PER_THREAD = 4


@lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sdn-native")


if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=_pool.cache_clear)


def _shares(count: int, minimum: int = 512) -> list[tuple[int, int]]:
    """``[first, last)`` ranges that split ``count`` items into parts for ``torch.get_num_threads()``
    threads, none shorter than ``minimum`` items (a part costs tens of microseconds)."""
    threads = torch.get_num_threads()
    n = 1 if threads == 1 else max(1, min(PARTS_PER_THREAD * threads, count // minimum))
    bounds = [count * k // n for k in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _threads(parts: list) -> int:
    """Threads that run ``parts``: the calling thread and up to ``torch.get_num_threads() - 1`` workers."""
    return min(len(parts), torch.get_num_threads())


def _in_threads(run, parts: list[tuple[int, int]]) -> None:
    """``run(first, last, index)`` once for every part, by :func:`_threads` threads, each taking
    the next part when free (a kernel call releases the GIL). ``index`` numbers the part, so that
    a buffer per part needs no lock, and sums over parts come out the same whichever thread ran
    which part (with a buffer per thread, the gradients' rounding, and so a fit's trajectory,
    changed from run to run). Returns when every part has run; raises the first error."""
    if len(parts) == 1:
        run(*parts[0], 0)
        return
    claims = itertools.count()  # next() is atomic: every part is claimed once
    finished = [threading.Event() for _ in parts]
    errors = []

    def work() -> None:
        for index in iter(claims.__next__, None):
            if index >= len(parts):
                return
            try:
                run(*parts[index], index)
            except BaseException as error:  # re-raised by the calling thread
                errors.append(error)
            finally:
                finished[index].set()

    workers = _threads(parts) - 1
    for _ in range(workers):
        _pool(workers).submit(work)
    work()
    for event in finished:  # parts claimed by a worker that is still at them
        event.wait()
    if errors:
        raise errors[0]


def available(tensor: torch.Tensor) -> bool:
    """Whether the kernels can run on ``tensor``'s device (CPU, kernels wanted and built)."""
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
    n_bins = out.shape[-1]
    _in_threads(lambda first, last, index: _library().sdn_node_system(n_bins, first, last, out.dtype == torch.complex64,
                                                                      *pointers), _shares(n_bins))


def node_system_backward(grad, mic, derivatives, gradients) -> torch.Tensor:
    """The backward pass of :func:`node_system` on contiguous CPU tensors: writes ``gradients``
    and returns the weights' gradients.

    Parameters
    ----------
    grad : complex tensor, shape (F,)
        The gradient with respect to Y.
    mic : complex tensor, shape (6, F)
        :math:`c`, as given to :func:`node_system`.
    derivatives : tuple of complex tensors
        ``(d_pair, d_walls, d_source, d_mic, d_weights)`` written by :func:`node_system`.
    gradients : tuple of complex tensors
        ``(g_pair (15, F), g_walls (6, F), g_source (6, F), g_mic (6, F))``, written:
        ``grad`` times the conjugated derivatives (torch's convention for complex inputs).

    Returns
    -------
    torch.Tensor, shape (2, 6, 6), float64
        The gradients with respect to the junction and the extraction weights.
    """
    tensors = [t.contiguous() for t in (grad, mic, *derivatives)]
    assert all(t.is_contiguous() and t.dtype == grad.dtype for t in [*tensors, *gradients])
    pointers = [t.data_ptr() for t in [*tensors, *gradients]]
    n_bins = grad.shape[-1]
    parts = _shares(n_bins)
    weights = torch.zeros((len(parts), 2, 6, 6), dtype=torch.float64)  # a sum per part
    kernel = getattr(_library(), "sdn_node_system_backward_" + ("f32" if grad.dtype == torch.complex64 else "f64"))
    _in_threads(lambda first, last, index: kernel(n_bins, first, last, *pointers, weights[index].data_ptr()), parts)
    return weights.sum(0)


def soft_echo_density(h, kappa, window, target=None, grad_sums=None, scale=1.0):
    r"""The soft echo-density profile's window sums of the paper's placement and, when asked, the
    gradient of a loss of them, on contiguous CPU tensors.

    See ``echo_density_kernel.h`` for the equations; :mod:`sdn.echo_density` computes the same
    in PyTorch. The windows are shared out among ``torch.get_num_threads()`` threads.

    Parameters
    ----------
    h : torch.Tensor, shape (R, T)
        Signals, float32 or float64.
    kappa : torch.Tensor, shape (W,)
        Sigmoid slopes of the W = T - L windows.
    window : torch.Tensor, shape (L,)
        Window weights.
    target : torch.Tensor, shape (R, W), optional
        Target profile :math:`\eta_t`: the loss is :math:`\frac1W\sum_i (\eta_t(i) - \eta(i))^2`,
        :math:`\eta = c(\sum_j w(j) + S)/2`.
    grad_sums : torch.Tensor, shape (R, W), optional
        Or the loss's gradient with respect to the sums :math:`S`.
    scale : float
        :math:`c`, the profile's normalisation.

    Returns
    -------
    sums : torch.Tensor, shape (R, W)
        :math:`S(i) = \sum_j w(j)\tanh(\kappa_i(|h(i+j)| - \sigma_i)/2)`,
        :math:`\sigma_i^2 = \sum_j w(j) h(i+j)^2`.
    grad : torch.Tensor, shape (R, T), or None
        The loss's gradient with respect to ``h`` (None without ``target`` or ``grad_sums``).
    """
    rows, samples = h.shape
    length = window.shape[0]
    width = samples - length
    inputs = [None if t is None else t.detach().contiguous() for t in (h, kappa, window, target, grad_sums)]
    assert all(t.dtype == h.dtype and t.device.type == "cpu" for t in inputs if t is not None)
    sums = torch.empty((rows, width), dtype=h.dtype)
    parts = _shares(width)
    gradient = target is not None or grad_sums is not None
    # each part adds its windows' gradient terms into its own rows (windows overlap)
    grads = torch.zeros((len(parts), rows, samples), dtype=h.dtype) if gradient else None
    kernel = getattr(_library(), "sdn_soft_echo_density_" + ("f32" if h.dtype == torch.float32 else "f64"))
    pointers = [None if t is None else t.data_ptr() for t in inputs]

    def run(first: int, last: int, index: int) -> None:
        kernel(rows, samples, length, first, last, *pointers, scale, sums.data_ptr(),
               grads[index].data_ptr() if gradient else None)

    _in_threads(run, parts)
    if not gradient:
        return sums, None
    return sums, grads[0] if len(grads) == 1 else grads.sum(0)
