"""The benchmarks' timing loop: the median wall-clock time of repeated calls.

Imported by the scripts beside it (``python benchmarks/bench_*.py`` puts this folder on the path).
"""
from __future__ import annotations

import statistics
import time


def median_seconds(action, repeats: int, warmup: int = 0) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``action()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
