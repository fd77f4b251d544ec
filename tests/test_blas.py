"""gc.blas_threads / gc.set_blas_threads: the matmul threads of numpy's OpenBLAS, set and restored."""

import multiprocessing

import numba
import numpy as np
import pytest

import graphc as gc
from graphc.examples import two_layer


def test_blas_threads_inside_the_block_and_restored_after_it():
    before = gc.get_blas_threads()
    with gc.blas_threads(1):
        assert gc.get_blas_threads() == 1
    assert gc.get_blas_threads() == before


def test_restored_when_the_block_raises():
    before = gc.get_blas_threads()
    with pytest.raises(KeyError), gc.blas_threads(1):
        raise KeyError("x")
    assert gc.get_blas_threads() == before


def test_set_returns_the_previous_count():
    before = gc.get_blas_threads()
    assert gc.set_blas_threads(1) == before
    assert gc.set_blas_threads(before) == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True, None])
def test_a_count_that_is_not_a_positive_int_is_named(bad):
    before = gc.get_blas_threads()
    with pytest.raises(gc.ArgumentError, match="positive int"):
        gc.set_blas_threads(bad)
    assert gc.get_blas_threads() == before


def test_a_compiled_step_gives_the_same_results_on_one_thread():
    graph = gc.grad(two_layer(n=64, d_in=300, hidden=50, d_out=10))
    fn = gc.compile(graph)
    rng = np.random.default_rng(0)
    args = {name: rng.normal(size=v.shape).astype(np.float32) for name, v in graph.arguments.items()}
    expected = fn(**args)
    with gc.blas_threads(1):
        got = fn(**args)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6)


def test_openblas_runs_its_jobs_on_numbas_pool_with_the_same_bits():
    """``share_threads`` (which compiling installs) hands OpenBLAS's parallel jobs to numba's
    thread pool; a matmul's bits do not change, whichever pool runs its jobs."""
    from graphc.runtime import blas
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((512, 300)).astype(np.float32), rng.standard_normal((300, 700)).astype(np.float32)
    setter = blas._setter()
    if setter is None:  # not an OpenBLAS with a threads callback (older than 0.3.27): nothing to share
        assert not blas.share_threads()
        return
    setter(None)
    own = a @ b
    assert blas.share_threads() == (numba.threading_layer() in blas._SAFE_LAYERS)
    setter(blas._callback().address)
    np.testing.assert_array_equal(a @ b, own)
    with gc.blas_threads(1):
        np.testing.assert_array_equal(a @ b, own)


def test_a_forked_child_multiplies_on_openblas_own_pool():
    """numba's OpenMP pool does not survive a fork: the child gets OpenBLAS's own pool back."""
    from graphc.runtime import blas
    blas.share_threads()
    a = np.ones((256, 256), np.float32)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        total = pool.apply_async(_matmul_sum, (a,)).get(timeout=120)  # a hang, not a speed limit
    assert total == 256.0 ** 3


def _matmul_sum(a):
    return float((a @ a).sum())
