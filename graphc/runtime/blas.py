"""numpy's BLAS (the library behind every compiled matmul): how many threads it runs, and on
whose threads.

OpenBLAS starts a pool of its own, one thread per core, and spins those threads after each
call; graphc's threaded kernels run on numba's pool, and two pools spinning on the same cores
stall each other (a CNN step took 75 ms with its loop kernels threaded beside OpenBLAS's pool,
25.7 ms with them serial). ``share_threads`` hands OpenBLAS's parallel work to numba's pool
(OpenBLAS 0.3.27's threads callback: each of a call's jobs becomes an iteration of a numba
``prange``), so matmuls and loop kernels take turns on one pool, as PyTorch's do on its
OpenMP pool: the CNN step 25.7 -> 22.7 ms, the GPT block 27.9 -> 24.9 ms, with its loop kernels
threaded. The compiler calls it, and threads kernels beside matmuls only where it took; it
takes where numba's threading layer may be entered from several threads at once (OpenMP or
TBB, not the workqueue) and ``GRAPHC_SHARE_BLAS_THREADS`` is not 0. A forked child gets
OpenBLAS's own pool back (numba's OpenMP pool does not survive a fork). Results are the same
bits either way: OpenBLAS splits the work into the same jobs.

The thread count is worth setting too: on a loaded 2-core machine a two-thread matmul took
176 ms where one thread took 92 ms::

    with gc.blas_threads(1):
        fn(**arrays)
    previous = gc.set_blas_threads(2)

The library is found as threadpoolctl finds it: among the shared objects this process has
loaded (``/proc/self/maps``), the one exporting OpenBLAS's thread functions under one of the
names numpy's wheels give them. Elsewhere (MKL, Accelerate) setting the count is a
CompileError that says to use that library's own setting, and nothing is shared.
"""

import contextlib
import ctypes
import functools
import os

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..errors import ArgumentError, CompileError

# (get, set) as numpy's wheels (scipy-openblas, 64-bit ints) and system OpenBLAS builds name them
_NAMES = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
          ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
          ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads")]


@functools.cache
def _openblas() -> tuple:
    """(get, set, the library) of the OpenBLAS numpy loaded."""
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
                return getattr(lib, get), getattr(lib, set_), lib
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


# ---------------------------------------------------------------- one pool for BLAS and the kernels

_CALLBACK_NAMES = ("scipy_openblas_set_threads_callback_function64_", "scipy_openblas_set_threads_callback_function",
                   "openblas_set_threads_callback_function64_", "openblas_set_threads_callback_function")
_SAFE_LAYERS = ("omp", "tbb")  # numba threading layers that may be entered from several threads at once


@intrinsic
def _call_job(typingctx, job, thread, data, buffers):
    """Call OpenBLAS's ``void job(int thread, void *data, int buffers)`` through its address."""
    def codegen(context, builder, signature, args):
        pointer = ir.IntType(8).as_pointer()
        kind = ir.FunctionType(ir.VoidType(), [ir.IntType(32), pointer, ir.IntType(32)])
        builder.call(builder.inttoptr(args[0], kind.as_pointer()), [args[1], builder.inttoptr(args[2], pointer), args[3]])
        return context.get_dummy_value()

    return types.void(types.intp, types.int32, types.intp, types.int32), codegen


@numba.njit(parallel=True, nogil=True, cache=True)
def _run_jobs(job, count, size, first, buffers):
    for i in numba.prange(count):  # job i is numbered i: OpenBLAS picks the job's buffers by it
        _call_job(job, np.int32(i), first + i * size, buffers)


@functools.cache
def _callback():
    """OpenBLAS's threads callback, ``void (int sync, job, int count, size_t size, void *jobs,
    int buffers)``, as a C function running the jobs on numba's pool (returning when all ran)."""
    @numba.cfunc(types.void(types.int32, types.intp, types.int32, types.uintp, types.intp, types.int32), cache=True)
    def callback(sync, job, count, size, jobs, buffers):
        _run_jobs(job, count, np.intp(size), jobs, buffers)

    return callback


def _setter():
    """OpenBLAS's ``set_threads_callback_function``, or None where it has none (older than 0.3.27)."""
    try:
        lib = _openblas()[2]
    except CompileError:
        return None
    for name in _CALLBACK_NAMES:
        if hasattr(lib, name):
            setter = getattr(lib, name)
            setter.argtypes, setter.restype = [ctypes.c_void_p], None
            return setter
    return None


def _unshare():
    setter = _setter()
    if setter is not None:
        setter(None)  # OpenBLAS's own pool again


@functools.cache
def share_threads() -> bool:
    """Run OpenBLAS's parallel work on numba's thread pool from now on (see the module's
    docstring); True where it does."""
    if os.environ.get("GRAPHC_SHARE_BLAS_THREADS", "1") == "0":
        return False
    setter = _setter()
    if setter is None:
        return False
    _run_jobs(np.intp(0), np.int32(0), np.intp(0), np.intp(0), np.int32(0))  # starts numba's threading layer
    if numba.threading_layer() not in _SAFE_LAYERS:
        return False
    setter(_callback().address)
    os.register_at_fork(after_in_child=_unshare)
    return True
