"""Library ops as generated kernels (``codegen/library.py``): pad, take, take_along_axis,
scatter_add, index_add, argmax and argmin write their buffers directly on the CPU as on CUDA
(concat and matmul are numpy calls into the buffer there), and their results equal the
reference interpreter's; a bad index is a
DataError naming the op on every target, and the next good call is right."""

import numpy as np
import pytest

import graphc as gc
from compiled import assert_outputs_close
from graphc.passes.fusion import StepKind


def _embedding(V=7, D=5):
    g = gc.Graph("embedding")
    table = g.param("table", (V, D))
    tokens = g.input("tokens", (3, 4), "int64")
    weights = gc.reshape(gc.cast(gc.concat([tokens[:, 2:], tokens[:, :2]], 1), "float32"), (3, 4, 1))
    g.output("loss", gc.sum(gc.tanh(gc.take(table, tokens)) * weights))
    return gc.grad(g)


def test_every_cpu_library_step_but_matmul_and_concat_is_a_generated_kernel():
    g = gc.Graph("library")
    x = g.input("x", (3, 4))
    idx = g.input("idx", (3, 2), "int64")
    g.output("a", gc.concat([x, x * 2], 0))
    g.output("b", gc.pad(x, [1, 0], [0, 2]))
    g.output("c", gc.take(x, idx[:, 0]))
    g.output("d", gc.scatter_add(x[:, :2], idx, 1, 4))
    g.output("e", gc.argmax(x, 1))
    g.output("f", x @ gc.transpose(x))
    fn = gc.compile(g)
    library = [s for s in fn.steps if s.kind is StepKind.LIBRARY]
    assert {s.roots[0].op for s in library if s.name in fn.kernels} == {"pad", "take", "scatter_add", "argmax"}
    assert sorted(s.roots[0].op for s in library if s.name not in fn.kernels) == ["concat", "matmul"]
    args = {"x": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32),
            "idx": np.array([[0, 3], [2, 2], [1, 0]])}
    got, want = fn(**args), gc.evaluate(g, **args)
    for name in "abcde":  # exactly the reference's; BLAS sums in float32 (f)
        assert np.array_equal(got[name], want[name]), name
    np.testing.assert_allclose(got["f"], want["f"], rtol=1e-6)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_embedding_gradient_is_a_scatter_of_rows_equal_to_the_reference(target):
    graph = _embedding()
    fn = gc.compile(graph, target=target)
    rng = np.random.default_rng(1)
    args = {"table": rng.normal(size=(7, 5)).astype(np.float32), "tokens": rng.integers(0, 7, (3, 4))}
    args["tokens"][0, :3] = 2  # repeats accumulate
    assert [v.op for v in graph.nodes if v.op in ("index_add", "scatter_add")] == ["index_add"]
    assert_outputs_close(fn(**args), gc.evaluate(graph, **args), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_a_bad_token_is_a_data_error_and_the_next_call_is_right(target):
    graph = _embedding()
    fn = gc.compile(graph, target=target)
    table = np.ones((7, 5), np.float32)
    bad = np.zeros((3, 4), np.int64)
    bad[1, 2] = 7
    with pytest.raises(gc.DataError, match=r"\(take\): index 7 is out of range \[0, 7\)"):
        fn(table=table, tokens=bad)
    good = np.arange(12).reshape(3, 4) % 7
    assert_outputs_close(fn(table=table, tokens=good), gc.evaluate(graph, table=table, tokens=good),
                         rtol=1e-6, atol=1e-6)


def test_index_add_of_float32_rows_is_the_float64_sum_rounded_once():
    """Each result row sums its updates in order in float64, as np.add.at into float64 does."""
    g = gc.Graph("rows")
    u, i = g.input("u", (4, 2)), g.input("i", (4,), "int64")
    g.output("out", gc.index_add(u, i, 0, 2))
    u_ = np.array([[1e8, 1], [1, 1], [-1e8, 1], [0.5, 3]], np.float32)
    i_ = np.array([0, 0, 0, 1])
    out = gc.compile(g)(u=u_, i=i_)["out"]
    assert out.tolist() == [[1.0, 3.0], [0.5, 3.0]]  # float32 in order would lose the 1: 1e8 + 1 == 1e8
    assert np.array_equal(out, gc.evaluate(g, u=u_, i=i_)["out"])


def test_large_pointwise_library_kernels_thread_unless_they_check_indices():
    """fold and random_uniform over 2^16 elements or more run in chunks across threads, with
    the reference's results; take (which checks its indices) and argmax stay serial."""
    from graphc.codegen import numba_cpu
    n = numba_cpu.PARALLEL_MIN
    g = gc.Graph("large")
    x, k, idx = g.input("x", (4, n // 8, 4)), g.input("k", (), "int64"), g.input("idx", (n // 8,), "int64")
    g.output("fold", gc.fold(gc.windows(x, (2, 2)), (n // 8, 4), (2, 2)))
    g.output("random", gc.random_uniform(k, (n,), "float32"))
    g.output("take", gc.take(x, idx, axis=1))
    g.output("argmax", gc.argmax(x, axis=2))
    rng = np.random.default_rng(2)
    args = {"x": rng.standard_normal((4, n // 8, 4)).astype(np.float32), "k": np.array(5),
            "idx": rng.integers(0, n // 8, n // 8)}
    fn = gc.compile(g)
    got, expected = fn(**args), gc.evaluate(g, **args)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    threaded = {s.roots[0].op: "numba.prange" in fn.kernels[s.name].source
                for s in fn.steps if s.kind is StepKind.LIBRARY}
    assert threaded == {"fold": True, "random_uniform": True, "take": False, "argmax": False}
