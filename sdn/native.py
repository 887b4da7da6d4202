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

**One set of bits.** A fit is chaotic: one rounding apart, two trajectories end in different
places. So the kernels' floating-point operations, and their order, are fixed by the algorithm
alone, not by the CPU, the compiler's target or the number of threads:

- the echo-density kernel keeps its sums in a fixed number of lanes, added in lane order, however
  many machine vectors hold them, and the node system's lanes are frequency bins, each computed on
  its own;
- every build has ``-ffp-contract=off``: the compiler fuses no multiply and add into an FMA, which
  only some CPUs have; the echo-density kernel's multiply-adds are explicit ``fma`` on every build
  (an instruction, or libm's exact software fma);
- work is cut into parts of a fixed size (:data:`PART_SIZE`), whatever the number of threads,
  and sums over parts are added in part order.

The default build (``SDN_NATIVE_BUILD=native``) lets the compiler use the CPU's widest vector
instructions (``-march=native``), which only run the same operations faster; ``x86-64-v3`` builds
for AVX2 and FMA, ``generic`` for the compiler's baseline target (SSE2 on x86-64). All give the
same bits (``tests/test_native.py``). The PyTorch implementations, which run on CUDA, without a C compiler
or with ``SDN_NATIVE=0``, agree to rounding only: their sums follow torch's own order, which
depends on the CPU's vector width (:func:`compute_path` records it).

They run float32/float64 (echo density) and complex64/complex128 (node system) CPU tensors only;
:func:`available` says whether they can take a tensor, and every entry point checks dtypes,
shapes and devices itself, raising ``TypeError`` or ``ValueError`` (also under ``python -O``).

**The cache.** The library is compiled once per source, compiler, flags and CPU into the cache
directory (``$SDN_CACHE_DIR``, else ``$XDG_CACHE_HOME/sdn`` or ``~/.cache/sdn``), in well under a
second, with its SHA-256 beside it. Loading a file of native code runs it, so the loader trusts
only what this user built: a cache directory or library owned by someone else, or writable by
group or others, is refused with one warning (a directory: the library is then built in a private
temporary directory for this process; a library: it is built again), and the library's hash is checked before it is loaded. A library
that fails to load (bad hash, empty file, missing symbol) is rebuilt once; if that fails too, the
PyTorch implementations run, with one warning. Set ``SDN_NATIVE=0`` to use PyTorch everywhere.
"""
from __future__ import annotations

import _ctypes
import atexit
import ctypes
import hashlib
import itertools
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

#: Compiled together into one library; the headers are part of the cache key.
SOURCES = tuple(Path(__file__).with_name(name) for name in ("node_system.c", "echo_density.c"))
HEADERS = tuple(Path(__file__).with_name(name) for name in ("echo_density_kernel.h", "node_system_backward.h"))
#: The builds (``SDN_NATIVE_BUILD``): the compiler's target, this CPU's instruction set, x86-64 with
#: AVX2 and FMA, or the compiler's baseline. They differ in speed, not in results.
BUILDS = {"native": ["-march=native"], "x86-64-v3": ["-march=x86-64-v3"], "generic": []}
#: Flags of every build: no FMA contraction, no reassociation (-O3 allows neither by itself).
FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-Wno-psabi", "-std=gnu11", "-shared", "-fPIC"]
#: What runs instead when the library cannot be built.
FALLBACK = "the node system and the echo-density loss run in PyTorch, 2-7x slower on CPU"
#: dtypes of the kernels' tensors.
REAL = (torch.float32, torch.float64)
COMPLEX = (torch.complex64, torch.complex128)


def enabled() -> bool:
    """Whether the compiled kernels are wanted (``SDN_NATIVE`` is not ``0``)."""
    return os.environ.get("SDN_NATIVE", "1") != "0"


def build_kind() -> str:
    """The build asked for by ``SDN_NATIVE_BUILD`` (:data:`BUILDS`; default ``native``)."""
    kind = os.environ.get("SDN_NATIVE_BUILD", "native")
    if kind not in BUILDS:
        raise ValueError(f"SDN_NATIVE_BUILD={kind!r} is not a build: use one of {', '.join(BUILDS)}")
    return kind


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$SDN_CACHE_DIR``, else the user's cache directory."""
    if "SDN_CACHE_DIR" in os.environ:
        return Path(os.environ["SDN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sdn"


@dataclass(frozen=True)
class Build:
    """A loaded library and how it was made (see :func:`compute_path`)."""

    library: ctypes.CDLL
    kind: str
    compiler: str
    flags: tuple
    path: Path


class LoadError(OSError):
    """A library in the cache that must not, or cannot, be loaded."""


class UntrustedError(LoadError):
    """A file of the cache that another user owns or others can write: never loaded."""


@lru_cache(maxsize=None)
def _source_digest() -> str:
    """The SHA-256 of the kernels' C sources and headers, 16 hexadecimal digits (read once: the
    build's key and every run's compute path use it)."""
    return hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES + HEADERS)).hexdigest()[:16]


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags (a library built with -march=native runs only there)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    return "".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _unsafe(status: os.stat_result, what: str) -> str | None:
    """Why a file or directory of the cache cannot be trusted, or None."""
    if hasattr(os, "getuid") and status.st_uid != os.getuid():
        return f"{what} belongs to user {status.st_uid}, not to you ({os.getuid()})"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def _private_directory(directory: Path) -> Path:
    """``directory``, created 0700 if absent, or a new private temporary directory (with one warning)
    when it cannot be trusted: another user's, or writable by group or others."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = _unsafe(os.stat(directory), f"the kernel cache {directory}")
    except OSError as error:
        problem = f"the kernel cache {directory} cannot be used ({error})"
    if problem is None:
        return directory
    private = Path(tempfile.mkdtemp(prefix="sdn-kernels-"))  # 0700, this process's
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    warnings.warn(f"{problem}: not loading code from it; building the kernels in {private} for this process "
                  f"(set SDN_CACHE_DIR to a directory only you can write)", RuntimeWarning, stacklevel=4)
    return private


def _digest_path(target: Path) -> Path:
    return target.with_suffix(".sha256")


def _compile(compiler: str, flags: list, target: Path) -> None:
    """Build the library at ``target`` and write its SHA-256 beside it, each atomically (a private
    temporary file renamed: parallel builds are safe)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(handle)
    command = [compiler, *flags, *map(str, SOURCES), "-lm", "-o", temporary]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        os.unlink(temporary)
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        raise OSError(f"{compiler} could not build {', '.join(path.name for path in SOURCES)}: {message}")
    os.chmod(temporary, 0o700)  # whatever the umask: the loader refuses what others can write
    digest = hashlib.sha256(Path(temporary).read_bytes()).hexdigest()
    handle, digest_temporary = tempfile.mkstemp(dir=target.parent, suffix=".sha256")
    with os.fdopen(handle, "w") as file:
        file.write(digest)
    os.replace(temporary, target)
    os.replace(digest_temporary, _digest_path(target))


def _read_trusted(path: Path, what: str) -> tuple[int, bytes]:
    """An open descriptor of ``path`` and its content, if it is a regular file of this user that
    no one else can write; the checks are on the descriptor, so the file cannot be swapped after."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise LoadError(f"{what} {path} cannot be opened ({error.strerror})") from error
    status = os.fstat(descriptor)
    problem = _unsafe(status, f"{what} {path}")
    if problem or not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise UntrustedError(problem) if problem else LoadError(f"{what} {path} is not a regular file")
    with os.fdopen(os.dup(descriptor), "rb") as file:
        return descriptor, file.read()


def _load(target: Path) -> ctypes.CDLL:
    """The library at ``target``, loaded only if it is this user's and matches its recorded SHA-256."""
    digest_descriptor, recorded = _read_trusted(_digest_path(target), "the kernels' checksum")
    os.close(digest_descriptor)
    descriptor, content = _read_trusted(target, "the kernel library")
    try:
        if hashlib.sha256(content).hexdigest() != recorded.decode(errors="replace").strip():
            raise LoadError(f"the kernel library {target} does not match its recorded SHA-256")
        # through the checked descriptor where the system names it, so no other file can be loaded
        name = f"/proc/self/fd/{descriptor}" if Path("/proc/self/fd").is_dir() else str(target)
        library = ctypes.CDLL(name)
    finally:
        os.close(descriptor)
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    try:
        library.sdn_node_system.argtypes = [size] * 3 + [ctypes.c_int] + [pointer] * 12
        library.sdn_node_system.restype = None
        for name in ("sdn_node_system_backward_f32", "sdn_node_system_backward_f64"):
            getattr(library, name).argtypes = [size] * 3 + [pointer] * 12
            getattr(library, name).restype = None
        for name in ("sdn_soft_echo_density_f32", "sdn_soft_echo_density_f64"):
            getattr(library, name).argtypes = [size] * 5 + [pointer] * 5 + [ctypes.c_double] + [pointer] * 2
            getattr(library, name).restype = None
        library.sdn_vector_isa.argtypes = []
        library.sdn_vector_isa.restype = ctypes.c_char_p
    except AttributeError as error:
        # unloaded, or a rebuilt library opened under the same /proc/self/fd name would get this one back
        _ctypes.dlclose(library._handle)
        raise LoadError(f"the kernel library {target} lacks a function ({error})") from error
    return library


@lru_cache(maxsize=None)
def _build() -> Build | None:
    """The kernels for this process: loaded from the cache, else built (once more if loading what
    was there fails), else None with one warning."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        warnings.warn(f"no C compiler ({compiler!r}) found: {FALLBACK}; install gcc or set CC", RuntimeWarning,
                      stacklevel=3)
        return None
    kind = build_kind()
    flags = [*FLAGS, *BUILDS[kind]]
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(_source_digest().encode() + version.encode() + _cpu_signature().encode() + repr(flags).encode()).hexdigest()[:16]
    target = _private_directory(cache_dir()) / f"sdn-{kind}-{key}.so"
    made = dict(kind=kind, compiler=version.splitlines()[0] if version else compiler, flags=tuple(flags), path=target)
    build = first_error = None
    if target.exists():
        try:
            build = Build(_load(target), **made)
        except OSError as error:  # a damaged, foreign or incomplete library: build it again
            first_error = error
            if isinstance(error, UntrustedError):
                warnings.warn(f"{error}: not loading it; building the kernels again", RuntimeWarning, stacklevel=3)
    if build is None:
        try:
            _compile(compiler, flags, target)
            build = Build(_load(target), **made)
        except OSError as error:
            reason = f"{first_error}, and rebuilding failed: {error}" if first_error else str(error)
            warnings.warn(f"{reason}; {FALLBACK}", RuntimeWarning, stacklevel=3)
            return None
    if kind == "native" and "fma" not in build.library.sdn_vector_isa().decode():
        warnings.warn("this CPU has no fused multiply-add instructions: the compiled echo-density loss computes "
                      "them in software and is slower than PyTorch's; SDN_NATIVE=0 runs PyTorch (other rounding, "
                      "see sdn.native)", RuntimeWarning, stacklevel=3)
    return build


def _library() -> ctypes.CDLL | None:
    build = _build()
    return None if build is None else build.library


#: Intel MKL's reproducibility modes (``mkl_cbwr_get``), by number.
MKL_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
                10: "AVX2", 12: "AVX512"}


def mkl_branch() -> str | None:
    """The code Intel MKL runs torch's CPU FFTs with: its reproducibility mode (``MKL_CBWR``, set to
    AVX2 by ``import sdn``), or None where torch has no MKL."""
    if not torch.backends.mkl.is_available():
        return None
    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        number = library.mkl_serv_cbwr_get(1)  # MKL_CBWR_BRANCH
    except (OSError, AttributeError):  # another platform's library, or MKL's symbols not exported
        return os.environ.get("MKL_CBWR")
    return MKL_BRANCHES.get(number, str(number))


def compute_path(device: str | torch.device = "cpu") -> dict:
    """Which code computes a fit on ``device``: recorded with every run and in the study's
    ``environment.csv``, since results are the same bits only along one compute path.

    Returns
    -------
    dict
        ``kernels``: ``"compiled"`` or ``"pytorch"``; ``kernel_source``: the SHA-256 of the
        kernels' C files (16 digits), which fix their operations; ``build``, ``vector_isa``, ``compiler``,
        ``flags``: the library's (None for PyTorch); ``torch_cpu_capability``: the vector code of
        torch's own CPU operations (:func:`torch.backends.cpu.get_cpu_capability`), which the rest of a
        training step runs; ``mkl_cbwr``: the code of MKL's FFTs (:func:`mkl_branch`);
        ``machine``: the processor architecture; ``device``: its type.
    """
    device = torch.device(device)
    build = _build() if device.type == "cpu" and enabled() else None
    return {
        "kernels": "pytorch" if build is None else "compiled",
        "kernel_source": None if build is None else _source_digest(),
        "build": None if build is None else build.kind,
        "vector_isa": None if build is None else build.library.sdn_vector_isa().decode(),
        "compiler": None if build is None else build.compiler,
        "flags": None if build is None else " ".join(build.flags),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": mkl_branch(),
        "machine": platform.machine(),
        "device": device.type,
    }


#: Bins or windows per part when work is shared out among threads: the parts, and so the order of
#: the sums over them, depend on the size of the problem only. 2048 windows of echo density take
#: about 0.4 ms, far more than handing a part to a thread.
PART_SIZE = 2048


@lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sdn-native")


if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=_pool.cache_clear)


def _parts(count: int) -> list[tuple[int, int]]:
    """``[first, last)`` ranges of :data:`PART_SIZE` items (the last one up to twice that) that
    cover ``count`` items; none for no items."""
    n = max(1, count // PART_SIZE) if count else 0
    bounds = [k * PART_SIZE for k in range(n)] + [count]
    return list(zip(bounds[:-1], bounds[1:]))


def _in_threads(run, parts: list[tuple[int, int]]) -> None:
    """``run(first, last, index)`` once for every part, by up to ``torch.get_num_threads()``
    threads (the calling one included), each taking the next part when free (a kernel call
    releases the GIL). ``index`` numbers the part, so that a buffer per part needs no lock and sums
    over parts come out the same whichever thread ran which part. Returns when every part has run;
    raises the first error."""
    threads = min(len(parts), torch.get_num_threads())
    if threads <= 1:
        for index, (first, last) in enumerate(parts):
            run(first, last, index)
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

    for _ in range(threads - 1):
        _pool(threads - 1).submit(work)
    work()
    for event in finished:  # parts claimed by a worker that is still at them
        event.wait()
    if errors:
        raise errors[0]


def _in_order(parts: torch.Tensor) -> torch.Tensor:
    """The sum over the first dimension, added in index order (torch's reductions may pick the
    order by the CPU's vector width)."""
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    return total


def available(*tensors: torch.Tensor, dtypes: tuple = REAL + COMPLEX) -> bool:
    """Whether the kernels can take ``tensors``: CPU tensors of one dtype among ``dtypes``
    (:data:`REAL` for the echo density, :data:`COMPLEX` for the node system), with the kernels
    wanted and built. Anything else (CUDA, float16, bfloat16, mixed dtypes) runs in PyTorch."""
    dtype = tensors[0].dtype
    return (all(t.device.type == "cpu" and t.dtype == dtype for t in tensors) and dtype in dtypes
            and enabled() and _library() is not None)


def _check(name: str, tensor, dtype: torch.dtype, shape: tuple, written: bool = False) -> None:
    """Raise TypeError or ValueError unless ``tensor`` is a CPU tensor of ``dtype`` and ``shape``
    (and contiguous when the kernel writes it). Explicit checks: they stand under ``python -O``, and
    a kernel given anything else reads or writes out of bounds."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise TypeError(f"{name} must be on the CPU for the compiled kernels, got {tensor.device}")
    if tensor.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {tensor.dtype}")
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(tensor.shape)}")
    if written and not tensor.is_contiguous():
        raise ValueError(f"{name} is written by the kernel and must be contiguous")


#: The rows of the node system's per-bin tensors: pair, walls, source, mic, weights.
_ROWS = (("pair", (15,)), ("walls", (6,)), ("source", (6,)), ("mic", (6,)), ("weights", (6, 6)))


def _check_rows(prefix: str, tensors, dtype: torch.dtype, n_bins: int, written: bool) -> None:
    """:func:`_check` for tensors holding the rows of :data:`_ROWS` in order (as many as given; the
    callers check how many), each by ``n_bins``."""
    for (name, rows), tensor in zip(_ROWS, tensors):
        _check(prefix + name, tensor, dtype, (*rows, n_bins), written=written)


def node_system(pair, walls, source, mic, junction, extraction, out, derivatives=None) -> None:
    """Run the kernel on CPU tensors, writing ``out`` and, if given, the ``derivatives``.

    Parameters
    ----------
    pair, walls, source, mic : complex tensor, shapes (15, F), (6, F), (6, F), (6, F)
        As :class:`sdn.node_system.NodeSystem`, for one row of F bins; all of ``out``'s dtype.
    junction, extraction : real tensor, shape (6, 6)
    out : contiguous complex tensor, shape (F,)
        Y per bin, written; complex64 or complex128.
    derivatives : tuple of contiguous complex tensors or None
        ``(d_pair (15, F), d_walls (6, F), d_source (6, F), d_mic (6, F), d_weights (6, 6, F))``,
        written (see :class:`sdn.node_system.NodeSystem`).

    Raises
    ------
    TypeError, ValueError
        For any other dtype, device or shape, or a written tensor that is not contiguous.
    """
    if not isinstance(out, torch.Tensor) or out.dtype not in COMPLEX or out.ndim != 1:
        raise TypeError("out must be a 1-d complex64 or complex128 torch.Tensor")
    n_bins = out.shape[0]
    _check("out", out, out.dtype, (n_bins,), written=True)
    _check_rows("", (pair, walls, source, mic), out.dtype, n_bins, written=False)
    for name, tensor in (("junction", junction), ("extraction", extraction)):
        if not isinstance(tensor, torch.Tensor) or not tensor.dtype.is_floating_point:
            raise TypeError(f"{name} must be a real torch.Tensor")
        _check(name, tensor, tensor.dtype, (6, 6))
    if derivatives is not None:
        if len(derivatives) != 5:
            raise ValueError("derivatives must be (d_pair, d_walls, d_source, d_mic, d_weights)")
        _check_rows("d_", derivatives, out.dtype, n_bins, written=True)
    inputs = [t.contiguous() for t in (pair, walls, source, mic)]
    weights = [t.detach().to(torch.float64).contiguous() for t in (junction, extraction)]
    pointers = [t.data_ptr() for t in inputs + weights + [out, *(derivatives or ())]]
    pointers += [None] * (5 if derivatives is None else 0)
    kernel = _library().sdn_node_system
    # each bin is solved on its own: the parts do not change the result
    _in_threads(lambda first, last, index: kernel(n_bins, first, last, out.dtype == torch.complex64, *pointers),
                _parts(n_bins))


def node_system_backward(grad, mic, derivatives, gradients) -> torch.Tensor:
    """The backward pass of :func:`node_system` on CPU tensors: writes ``gradients`` and returns
    the weights' gradients.

    Parameters
    ----------
    grad : complex tensor, shape (F,)
        The gradient with respect to Y; complex64 or complex128, the dtype of every tensor here.
    mic : complex tensor, shape (6, F)
        :math:`c`, as given to :func:`node_system`.
    derivatives : tuple of complex tensors
        ``(d_pair, d_walls, d_source, d_mic, d_weights)`` written by :func:`node_system`.
    gradients : tuple of contiguous complex tensors
        ``(g_pair (15, F), g_walls (6, F), g_source (6, F), g_mic (6, F))``, written:
        ``grad`` times the conjugated derivatives (torch's convention for complex inputs).

    Returns
    -------
    torch.Tensor, shape (2, 6, 6), float64
        The gradients with respect to the junction and the extraction weights: sums over bins,
        by parts of :data:`PART_SIZE` bins added in order.

    Raises
    ------
    TypeError, ValueError
        For any other dtype, device or shape, or a written tensor that is not contiguous.
    """
    if not isinstance(grad, torch.Tensor) or grad.dtype not in COMPLEX or grad.ndim != 1:
        raise TypeError("grad must be a 1-d complex64 or complex128 torch.Tensor")
    n_bins = grad.shape[0]
    _check("mic", mic, grad.dtype, (6, n_bins))
    if len(derivatives) != 5 or len(gradients) != 4:
        raise ValueError("derivatives must be 5 tensors and gradients 4 (see sdn.native.node_system_backward)")
    _check_rows("d_", derivatives, grad.dtype, n_bins, written=False)
    _check_rows("g_", gradients, grad.dtype, n_bins, written=True)
    tensors = [t.contiguous() for t in (grad, mic, *derivatives)]
    pointers = [t.data_ptr() for t in [*tensors, *gradients]]
    parts = _parts(n_bins)
    weights = torch.zeros((max(1, len(parts)), 2, 6, 6), dtype=torch.float64)  # a sum per part
    kernel = getattr(_library(), "sdn_node_system_backward_" + ("f32" if grad.dtype == torch.complex64 else "f64"))
    _in_threads(lambda first, last, index: kernel(n_bins, first, last, *pointers, weights[index].data_ptr()), parts)
    return _in_order(weights)


def soft_echo_density(h, kappa, window, target=None, grad_sums=None, scale=1.0):
    r"""The soft echo-density profile's window sums of the paper's placement and, when asked, the
    gradient of a loss of them, on CPU tensors.

    See ``echo_density_kernel.h`` for the equations; :mod:`sdn.echo_density` computes the same
    in PyTorch. The windows are cut into parts of :data:`PART_SIZE`, shared out among
    ``torch.get_num_threads()`` threads; each part's gradient is added in part order.

    Parameters
    ----------
    h : torch.Tensor, shape (R, T)
        Signals, float32 or float64: the dtype of every tensor here.
    kappa : torch.Tensor, shape (W,)
        Sigmoid slopes of the W = T - L windows (W >= 1).
    window : torch.Tensor, shape (L,)
        Window weights (L >= 1).
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

    Raises
    ------
    TypeError, ValueError
        For any other dtype, device or shape.
    """
    if not isinstance(h, torch.Tensor) or h.dtype not in REAL or h.ndim != 2:
        raise TypeError("h must be a 2-d float32 or float64 torch.Tensor (R, T)")
    if not isinstance(window, torch.Tensor) or window.ndim != 1 or window.shape[0] < 1:
        raise ValueError("window must be a 1-d torch.Tensor of at least one tap")
    rows, samples = h.shape
    length = window.shape[0]
    width = samples - length
    if width < 1:
        raise ValueError(f"the signals ({samples} samples) must be longer than the window ({length})")
    _check("h", h, h.dtype, (rows, samples))
    _check("window", window, h.dtype, (length,))
    _check("kappa", kappa, h.dtype, (width,))
    for name, tensor in (("target", target), ("grad_sums", grad_sums)):
        if tensor is not None:
            _check(name, tensor, h.dtype, (rows, width))
    scale = float(scale)
    inputs = [None if t is None else t.detach().contiguous() for t in (h, kappa, window, target, grad_sums)]
    sums = torch.empty((rows, width), dtype=h.dtype)
    parts = _parts(width)
    gradient = target is not None or grad_sums is not None
    # each part writes the gradient of the samples its windows read: its own block (windows overlap)
    blocks = [torch.empty((rows, last - first + length - 1), dtype=h.dtype) for first, last in parts] if gradient else []
    kernel = getattr(_library(), "sdn_soft_echo_density_" + ("f32" if h.dtype == torch.float32 else "f64"))
    pointers = [None if t is None else t.data_ptr() for t in inputs]

    def run(first: int, last: int, index: int) -> None:
        kernel(rows, samples, length, first, last, *pointers, scale, sums.data_ptr(),
               blocks[index].data_ptr() if gradient else None)

    _in_threads(run, parts)
    if not gradient:
        return sums, None
    grad = torch.zeros((rows, samples), dtype=h.dtype)
    for (first, _), block in zip(parts, blocks):  # in part order: the same sums on every machine
        grad[:, first:first + block.shape[1]] += block
    return sums, grad
