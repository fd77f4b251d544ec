"""Shared benchmark helpers: medians of repeated timings, the machine's bandwidth ceiling,
optional peers (JAX, PyTorch), and a table of results with ratios.

Timings depend on glibc's allocator history, so the scripts pin MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ when they are not set (they must be set before the process starts: run
the scripts through ``python benchmarks/run.py`` or set them yourself) and print what was used.
"""

import os
import statistics
import time

import numpy as np


def median_time(fn, repeat=20, warmup=3, min_time=0.0) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < repeat or sum(times) < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def triad_gbps(n=1 << 24, repeat=10) -> float:
    """STREAM triad a = b + s * c with numba's parallel loops: the bandwidth we can hope for."""
    import numba

    @numba.njit(parallel=True, fastmath=True)
    def triad(a, b, c, s):
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]

    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    t = median_time(lambda: triad(a, b, c, np.float32(3.0)), repeat=repeat)
    return 3 * n * 4 / t / 1e9


def jax_or_none():
    try:
        import jax

        jax.config.update("jax_platforms", "cpu")
        return jax
    except Exception:  # noqa: BLE001 - any import failure means JAX is not usable here
        return None


def torch_or_none():
    try:
        import torch

        return torch
    except Exception:  # noqa: BLE001
        return None


def environment() -> str:
    keys = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")
    shown = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in keys)
    return f"{os.cpu_count()} cpus; {shown}"


def table(title: str, rows: list, baseline: str = "graphc") -> str:
    """Rows (name, seconds, note) with each time's ratio to ``baseline``'s."""
    base = dict((r[0], r[1]) for r in rows)[baseline]
    lines = [f"== {title}", f"   {environment()}",
             f"   {'':<22}{'median':>12}{'graphc / this':>16}   note"]
    for name, seconds, note in rows:
        lines.append(f"   {name:<22}{seconds * 1e3:>10.3f}ms{base / seconds:>16.2f}   {note}")
    return "\n".join(lines)
