"""Shared benchmark helpers: medians of repeated timings, the machine's bandwidth ceiling,
optional peers (JAX, PyTorch), and a table of results with ratios.

Timings depend on glibc's allocator history, so the scripts pin MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ when they are not set (they must be set before the process starts: run
the scripts through ``python benchmarks/run.py`` or set them yourself) and print what was used.

``BENCH_QUICK=1`` cuts the repeat counts of the scripts that use ``repeats`` (a smoke run: the
numbers are plausible, not final). ``BENCH_BLAS_THREADS=1`` runs the matmuls of graphc, numpy
and PyTorch on one thread in the scripts that time each system in a worker process
(``check_and_time``): on a loaded 2-core machine, one thread is often the faster.
"""

import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def repeats(n: int) -> int:
    """``n``, or a tenth of it (at least 3) under ``BENCH_QUICK``."""
    return max(3, n // 10) if QUICK else n


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


class _Lazy:
    """A module imported on first use, so that the process timing one system (see
    ``check_and_time``) never loads another system's framework and thread pools."""

    def __init__(self, name: str, setup=None):
        self._name, self._setup, self._module = name, setup, None

    def load(self):
        """The module itself, imported (and set up) now if it was not yet."""
        if self._module is None:
            self._module = importlib.import_module(self._name)
            if self._setup:
                self._setup(self._module)
        return self._module

    def __getattr__(self, attr):
        return getattr(self.load(), attr)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _jax_on_cpu(jax):
    jax.config.update("jax_platforms", "cpu")


def jax_or_none(lazy: bool = False):
    """jax, on the CPU (``lazy``: imported when first used); None where it is not installed."""
    if not _installed("jax"):
        return None
    module = _Lazy("jax", _jax_on_cpu)
    return module if lazy else module.load()


def lazy_module(name: str):
    """``name`` imported when first used (after ``jax_or_none(lazy=True)``'s setup for jax.numpy)."""
    return _Lazy(name)


def torch_or_none(lazy: bool = False):
    """PyTorch (``lazy``: imported when first used); None where it is not installed."""
    if not _installed("torch"):
        return None
    module = _Lazy("torch")
    return module if lazy else module.load()


BLAS_THREADS = "BENCH_BLAS_THREADS"  # matmul threads in check_and_time's workers (numpy's OpenBLAS, PyTorch)


def environment() -> str:
    keys = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", BLAS_THREADS)
    shown = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in keys)
    return f"{os.cpu_count()} cpus; {shown}"


def table(title: str, rows: list, baseline: str = "graphc", unit: str = "ms") -> str:
    """Rows (name, seconds, note) with each time's ratio to ``baseline``'s, in ``unit`` (ms, us)."""
    base = dict((r[0], r[1]) for r in rows)[baseline]
    scale = {"ms": 1e3, "us": 1e6}[unit]
    lines = [f"== {title}", f"   {environment()}",
             f"   {'':<22}{'median':>12}{'graphc / this':>16}   note"]
    for name, seconds, note in rows:
        lines.append(f"   {name:<22}{seconds * scale:>10.3f}{unit}{base / seconds:>16.2f}   {note}")
    return "\n".join(lines)


# Forward + backward steps: each a zero-argument callable returning (loss, [gradient per wrt name]),
# called once to check it against a reference and then timed.


def graphc_step(fn, arrays: dict, wrt: list, of: str = "loss"):
    """A compiled ``gc.grad`` graph called with keyword arrays."""
    def step():
        out = fn(**arrays)
        return out[of], [out[f"grad_{n}"] for n in wrt]
    step.note = f"{fn.stats['n_kernels']} kernels"
    return step


def jax_step(jax, loss, arrays: dict, wrt: list):
    """``jax.jit(jax.value_and_grad(loss))`` by the ``wrt`` names, on device copies of ``arrays``
    (``loss`` takes them by name); blocks until the results are there."""
    jax.config  # a lazy jax sets itself up (CPU only) before jax.numpy is imported
    import jax.numpy as jnp

    names = list(arrays)
    f = jax.jit(jax.value_and_grad(lambda *a: loss(**dict(zip(names, a))),
                                   argnums=tuple(names.index(n) for n in wrt)))
    args = [jnp.asarray(a) for a in arrays.values()]
    return lambda: jax.block_until_ready(f(*args))


def torch_step(torch, loss, arrays: dict, wrt: list):
    """PyTorch eager: ``loss`` (taking tensors by name) then ``torch.autograd.grad`` by ``wrt``."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(k in wrt) for k, a in arrays.items()}
    leaves = [tensors[k] for k in wrt]

    def step():
        value = loss(**tensors)
        return value, torch.autograd.grad(value, leaves)
    return step


def _numpy(a):
    return np.asarray(a.detach() if hasattr(a, "detach") else a)


def check_and_time(title: str, steps: list, reference, wrt: list, repeat: int, rtol: float, atol: float,
                   loss_atol: float) -> list:
    """Rows (name, seconds, note) for ``steps`` [(name, make_step, note)], each system in a
    fresh process of this script: numba's, XLA's and PyTorch's thread pools in one process
    spin against each other (on 2 cores a 4096x256 layer norm step took 1.3 ms alone, 5.9 ms
    beside them). ``make_step()`` builds the step there (importing its framework); the step is
    checked against ``reference`` (loss, [gradients]) to float32 tolerance: ``rtol``, and
    ``atol`` times each gradient's largest magnitude (a gradient summed over many rows differs
    with the order of the sum), ``loss_atol`` for the loss; then timed. A step may carry a
    ``note`` attribute, appended to its row's."""
    wanted = os.environ.get(_WORKER)
    if wanted:
        table_title, name = json.loads(wanted)
        if table_title != title:
            return []
        make, note = next((make, note) for n, make, note in steps if n == name)
        _limit_blas_threads(name)
        step = make()
        value, grads = step()
        np.testing.assert_allclose(_numpy(value), reference[0], rtol=rtol, atol=loss_atol,
                                   err_msg=f"{name}: loss disagrees with numpy")
        for n, got, want in zip(wrt, grads, reference[1]):
            np.testing.assert_allclose(_numpy(got), want, rtol=rtol, atol=atol * float(np.max(np.abs(want))),
                                       err_msg=f"{name}: grad_{n} disagrees with numpy")
        seconds = median_time(step, repeat=repeat, warmup=2)
        print(json.dumps({"seconds": seconds, "note": "; ".join(filter(None, [getattr(step, "note", ""), note]))}))
        sys.exit(0)
    rows = []
    for name, _, _ in steps:
        env = {**os.environ, _WORKER: json.dumps([title, name])}
        done = subprocess.run([sys.executable, *sys.argv], env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{name}: its benchmark process failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append((name, result["seconds"], result["note"]))
    return rows


def _limit_blas_threads(system: str) -> None:
    """``$BENCH_BLAS_THREADS`` matmul threads for this worker's system: ``gc.set_blas_threads``
    for graphc and numpy (one OpenBLAS), ``torch.set_num_threads`` for PyTorch; XLA sizes its
    pool when jax starts (``XLA_FLAGS``), so jax.jit keeps its own."""
    n = os.environ.get(BLAS_THREADS)
    if not n:
        return
    if system == "pytorch":
        torch_or_none().set_num_threads(int(n))
    elif system != "jax.jit":
        import graphc as gc
        gc.set_blas_threads(int(n))


_WORKER = "GRAPHC_BENCH_STEP"  # set in a benchmark's worker process: JSON [table title, system]


def print_peers(title: str, rows: list) -> None:
    """``table`` of ``rows`` with graphc's ratios to jax.jit and PyTorch under it (nothing when
    this process is one of ``check_and_time``'s workers, which return no rows)."""
    if rows:
        print(table(title, rows))
        print(ratio_line(rows, "graphc", "jax.jit"))
        print(ratio_line(rows, "graphc", "pytorch"))
        print()


def ratio_line(rows: list, ours: str, peer: str, target: str = "") -> str:
    """``ours``'s time over ``peer``'s, from ``table`` rows; "not measured" where either did not run."""
    t = dict((r[0], r[1]) for r in rows)
    if ours not in t or peer not in t:
        return f"   {ours} / {peer}: not measured ({peer.split()[0]} not installed?)"
    return f"   {ours} / {peer}: {t[ours] / t[peer]:.2f}x" + (f" ({target})" if target else "")
