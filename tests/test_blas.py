"""gc.blas_threads / gc.set_blas_threads: the matmul threads of numpy's OpenBLAS, set and restored."""

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
