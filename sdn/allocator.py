"""Keep freed memory in the process for the next training step (glibc's malloc).

A training step allocates and frees the same large buffers every epoch: the node system's stored
derivatives (9 MB for a 1 s target), the FFTs of the line responses, autograd's intermediates.
By default glibc's ``malloc`` maps a large block from the kernel and unmaps it when it is freed
(above a threshold that it raises as blocks are freed, up to 32 MiB), and it trims its heap once
enough is free at its top, so the next step asks the kernel again for zeroed pages. With both
limits raised, a freed block goes back to ``malloc``'s free lists and the next step reuses it: an
epoch of the ``correction_fir6`` fit took 1.8 ms (7 %) less on average, in six interleaved pairs
of runs (``benchmarks/README.md``). The cost is that the process keeps its peak heap until it
exits.

The training command line, the notebooks (:func:`sdn.notebook.setup`) and the training benchmarks
call :func:`keep_freed_memory`; :func:`sdn.train.fit` does not, since it is process-wide.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

#: ``mallopt`` parameters of glibc's ``malloc.h``.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Largest block served from the heap, and free bytes kept at the heap's top.
LIMIT_BYTES = 2**30


@lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`LIMIT_BYTES` for this process.

    Returns
    -------
    bool
        Whether both were set: False where the C library is not glibc (macOS, musl, Windows),
        which then behaves as before, or where glibc refuses a value.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    results = [mallopt(parameter, LIMIT_BYTES) for parameter in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)]
    return all(results)
