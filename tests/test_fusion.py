"""Fusion structure: which kernels merge (siblings, reduction epilogues, stored prologues), and
that every merged kernel still computes what the reference interpreter computes."""

import itertools

import numpy as np
import pytest

import compiled  # noqa: F401  (a private kernel cache for the tests)
import graphc as gc
from graphc.examples import unrolled_rnn

RNG = np.random.default_rng(7)


def _check(g, **arrays):
    fn = gc.compile(g)
    out, ref = fn(**arrays), gc.evaluate(g, **arrays)
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-12, atol=1e-12, err_msg=name)
    return fn


def _x(shape):
    return RNG.standard_normal(shape)


@pytest.mark.parametrize("build, kernels", [
    (lambda x: gc.layer_norm(x), 2),  # mean; variance (+ rsqrt epilogue) then normalize each row
    (lambda x: gc.softmax(x), 2),  # max; exp stored while summing, then divide each row
    (lambda x: gc.log_softmax(x), 2),
    (lambda x: gc.logsumexp(x, axis=1), 2),  # max, exp-sum with log epilogue
    (lambda x: gc.sum(gc.exp(x)) / 7 + 1, 1),  # a full reduction with its epilogue
])
def test_reductions_take_their_prologue_and_epilogue(build, kernels):
    g = gc.Graph("r")
    x = g.input("x", (16, 24), "float64")
    g.output("y", build(x))
    fn = _check(g, x=_x((16, 24)))
    assert fn.stats["n_loop_kernels"] == kernels, fn.report()


def test_loss_and_gradient_share_one_pass_over_the_data():
    g = gc.Graph("chain")
    x = g.input("x", (1000,), "float64")
    bias, c = g.param("bias", (), "float64"), g.param("c", (), "float64")
    g.output("loss", gc.sum((gc.relu(x + bias) + x) * c))
    dg = gc.grad(g, wrt=["x"])
    fn = _check(dg, x=_x(1000), bias=np.float64(0.1), c=np.float64(0.5))
    assert fn.stats["n_loop_kernels"] == 1, fn.report()
    assert "stored prologue" in fn.report()


@pytest.mark.parametrize("shape", [(6, 5, 4), (7, 1, 3)])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_every_reduction_layout_with_a_stored_elementwise_sibling(shape, op, keepdims):
    """Column reductions (a reduced axis outside a kept one) accumulate into an array; row
    reductions into a scalar; both may store an elementwise value of the same domain."""
    for axes in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in (1, 2, 3)):
        g = gc.Graph("layout")
        x = g.input("x", shape, "float64")
        b = g.input("b", shape[-1:], "float64")
        y = gc.relu(x + b) * 2
        g.output("r", getattr(gc, op)(y, axis=axes, keepdims=keepdims))
        g.output("y", y)
        fn = _check(g, x=_x(shape), b=_x(shape[-1:]))
        assert fn.stats["n_loop_kernels"] == 1, (axes, fn.report())


def test_centering_by_a_row_mean_is_one_kernel_and_by_a_column_mean_two():
    for axis, kernels in ((1, 1), (0, 2)):
        g = gc.Graph("center")
        x = g.input("x", (5, 6), "float64")
        g.output("centered", x - gc.mean(x, axis=axis, keepdims=True))
        fn = _check(g, x=_x((5, 6)))
        assert fn.stats["n_loop_kernels"] == kernels, fn.report()


def test_to_dot_draws_each_loop_kernel_as_a_cluster():
    g = gc.Graph("ln")
    x = g.input("x", (4, 8), "float64")
    g.output("y", gc.layer_norm(x))
    fn = gc.compile(g)
    dot = fn.to_dot()
    loops = [s.name for s in fn.steps if s.kind == "loop"]
    assert dot.count("subgraph cluster_") == len(loops) == 2
    for name in loops:
        assert f"cluster_{name}" in dot and f'"kernel {name}"' in dot
    assert gc.to_dot(fn.graph).count("subgraph") == 0


@pytest.mark.parametrize("shape, axis", [((6, 7), -1), ((3, 4, 5), (1, 2)), ((3, 4, 5), -1)])
def test_row_epilogues_compute_what_the_reference_computes(shape, axis):
    """Softmax-like and normalize-like row passes, with shared inlined values recomputed."""
    g = gc.Graph("rows")
    x = g.input("x", shape, "float64")
    g.output("softmax", gc.softmax(x, axis=axis))
    centered = x - gc.mean(x, axis=axis, keepdims=True)
    g.output("scaled", centered * gc.rsqrt(gc.mean(centered * centered, axis=axis, keepdims=True) + 1e-5))
    fn = _check(g, x=_x(shape))
    assert "row epilogue" in fn.report()


def test_a_column_reduction_takes_no_row_epilogue():
    g = gc.Graph("cols")
    x = g.input("x", (6, 7), "float64")
    g.output("y", x / gc.sum(x, axis=0, keepdims=True))
    fn = _check(g, x=_x((6, 7)))
    assert "row epilogue" not in fn.report()


def _long_chain(n: int):
    g = gc.Graph("chain")
    h = g.input("x", (40,), "float64")
    ops = [gc.tanh, gc.sin, lambda v: v * 1.5, lambda v: v + 0.25, gc.sigmoid]
    for i in range(n):
        h = ops[i % len(ops)](h)
    g.output("y", h)
    return g


def test_long_chains_are_split_into_kernels_of_bounded_size():
    """numba's compile time grows faster than a kernel's size (a 2000-op kernel did not compile
    in 600 s), so no kernel computes more than MAX_KERNEL_OPS ops."""
    from graphc.passes.fusion import MAX_KERNEL_OPS, fuse

    cap = MAX_KERNEL_OPS
    groups = fuse(gc.simplify(_long_chain(10 * cap))).groups
    loops = [k for k in groups if k.kind == "loop"]
    assert all(len(k.values) <= cap for k in loops)
    assert len(loops) <= 10 * cap // (cap // 2)  # split where needed, not everywhere
    assert any("splits a chain" in r for k in loops for r in k.reasons)
    fn = _check(_long_chain(cap + 10), x=_x((40,)))  # the split kernels compute what one would
    assert fn.stats["n_loop_kernels"] == 2


def test_sibling_merges_stop_at_the_kernel_size_cap():
    from graphc.passes.fusion import MAX_KERNEL_OPS, fuse

    g = gc.Graph("siblings")
    x = g.input("x", (40,), "float64")
    for i in range(3 * MAX_KERNEL_OPS):
        g.output(f"y{i}", x * float(i + 2))
    loops = [k for k in fuse(gc.simplify(g)).groups if k.kind == "loop"]
    assert all(len(k.values) <= MAX_KERNEL_OPS for k in loops)
    assert 1 < len(loops) <= 4
    assert any(f"over {MAX_KERNEL_OPS} ops" in r for k in loops for r in k.reasons)


def test_one_hot_fuses_into_the_kernels_that_read_it():
    """one_hot is elementwise: its labels are read at the leading indices, the class is the
    last; cross-entropy's gradient needs no one-hot array (no library step, no buffer)."""
    g = gc.Graph("ce")
    logits = g.input("logits", (6, 5))
    labels = g.input("labels", (2, 3), "int64")
    g.output("loss", gc.cross_entropy(gc.reshape(logits, (2, 3, 5)), labels))
    dg = gc.grad(g, wrt=["logits"])
    fn = gc.compile(dg)
    assert all(s.kind != "library" for s in fn.steps)
    rng = np.random.default_rng(3)
    args = {"logits": rng.standard_normal((6, 5)).astype(np.float32), "labels": rng.integers(0, 5, (2, 3))}
    out, ref = fn(**args), gc.evaluate(dg, **args)
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("bad", [-1, 4])
def test_a_fused_one_hot_refuses_labels_out_of_range(fuse, bad):
    g = gc.Graph("oh")
    labels = g.input("labels", (3,), "int32")
    g.output("y", gc.sum(gc.one_hot(labels, 4) * g.input("w", (3, 4)), axis=1))
    fn = gc.compile(g, fuse=fuse)
    w = np.ones((3, 4), np.float32)
    with pytest.raises(gc.DataError, match=rf"one_hot.*index {bad} is out of range \[0, 4\)"):
        fn(labels=np.array([0, bad, 1], np.int32), w=w)
    np.testing.assert_array_equal(fn(labels=np.array([0, 3, 1], np.int32), w=w)["y"], np.ones(3, np.float32))


def test_the_report_of_an_unrolled_loop_grows_with_its_steps_not_their_pairs():
    """Every step of a loop reads the same weights, so each kernel has every earlier step as a
    candidate; those that reach it through another kernel, or that remat keeps apart, are one
    counted line, not a line each (T=64: 15,943 lines before, 378 now)."""
    counts = {}
    for steps in (16, 64):
        fn = gc.compile(gc.grad(unrolled_rnn(steps, 2, 2, 2)), remat="sqrt")
        lines = [line for line in fn.report().splitlines() if "not merged" in line]
        assert any("earlier kernels reading the same arrays" in line for line in lines)
        counts[steps] = len(lines) / len(fn.kernels)
    assert counts[64] < 2 * counts[16] and counts[64] < 4, counts
