"""How many threads numpy's BLAS (the library behind every compiled matmul) runs.

OpenBLAS starts one thread per core and spins them after each call. On a loaded 2-core machine
a two-thread matmul took 176 ms where one thread took 92 ms, and graphc's own threaded kernels
stall against the spinning threads (which is why plans with matmuls keep their loop kernels
serial), so the count is worth setting::

    with gc.blas_threads(1):
        fn(**arrays)
    previous = gc.set_blas_threads(2)

The library is found as threadpoolctl finds it: among the shared objects this process has
loaded (``/proc/self/maps``), the one exporting OpenBLAS's thread functions under one of the
names numpy's wheels give them. Elsewhere (MKL, Accelerate) it is a CompileError that says to
use that library's own setting.
"""

import contextlib
import ctypes
import functools

from ..errors import ArgumentError, CompileError

# (get, set) as numpy's wheels (scipy-openblas, 64-bit ints) and system OpenBLAS builds name them
_NAMES = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
          ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
          ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads")]


@functools.cache
def _openblas() -> tuple:
    """(get, set) of the OpenBLAS numpy loaded."""
    import numpy  # noqa: F401  (loads its BLAS)

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "blas" in line.lower() and ".so" in line})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in _NAMES:
            if hasattr(lib, get) and hasattr(lib, set_):
                return getattr(lib, get), getattr(lib, set_)
    raise CompileError("blas threads: numpy's BLAS here is not an OpenBLAS this process can find "
                       "(numpy.show_config() names it); set its threads by its own means, e.g. "
                       "MKL_NUM_THREADS=1 or VECLIB_MAXIMUM_THREADS=1 before starting Python")


def get_blas_threads() -> int:
    """The number of threads numpy's OpenBLAS runs a call with."""
    return int(_openblas()[0]())


def set_blas_threads(n: int) -> int:
    """Run numpy's OpenBLAS calls (every compiled matmul) on ``n`` threads; returns the count
    it had."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ArgumentError(f"blas threads: expected a positive int, got {n!r}")
    previous = get_blas_threads()
    _openblas()[1](n)
    return previous


@contextlib.contextmanager
def blas_threads(n: int):
    """``with gc.blas_threads(1): ...``: OpenBLAS on ``n`` threads inside, as before after."""
    previous = set_blas_threads(n)
    try:
        yield
    finally:
        set_blas_threads(previous)
