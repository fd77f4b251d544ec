"""Whole graphs compiled: fused vs unfused vs the reference interpreter, random graphs from
hypothesis, edge cases of shapes, strides and numerics, fusion structure, and training the
two-layer net with compiled SGD steps."""

import tokenize
import io
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiled import RTOL, assert_close, assert_outputs_close, check_graph  # sets GRAPHC_CACHE_DIR first
from strategies import arguments, graphs, random_arguments

import graphc as gc
from graphc import examples

# ---------------------------------------------------------------- fused vs unfused vs reference


def _mlp(dtype="float64"):
    g = gc.Graph("mlp")
    x = g.input("x", (8, 6), dtype)
    labels = g.input("labels", (8,), "int64")
    w1 = g.param("w1", (6, 5), dtype)
    b1 = g.param("b1", (5,), dtype)
    w2 = g.param("w2", (5, 4), dtype)  # 4 classes: random_arguments draws labels in [0, 4)
    h = gc.relu(x @ w1 + b1)
    logits = gc.tanh(h) @ w2
    g.output("loss", gc.cross_entropy(logits, labels) + 0.01 * gc.sum(w1 * w1))
    return g


def _diamond(dtype="float32"):
    """A transcendental read by several consumers, siblings of one shape, a reduction that
    reads a fused prologue, and a value used both inside a kernel and as an output."""
    g = gc.Graph("diamond")
    x = g.input("x", (5, 7), dtype)
    y = g.input("y", (7,), dtype)
    e = gc.exp(x * 0.5)
    a = e + y
    b = e * y - 1
    g.output("a", a)
    g.output("b", gc.sigmoid(b))
    g.output("s", gc.sum(a * b, axis=1))
    g.output("m", gc.max(gc.where(a > b, a, b), axis=0, keepdims=True))
    g.output("e", e)
    return g


def _layernorm_chain(dtype="float64"):
    g = gc.Graph("ln")
    x = g.input("x", (6, 10), dtype)
    gamma = g.param("gamma", (10,), dtype)
    beta = g.param("beta", (10,), dtype)
    h = gc.layer_norm(x, gamma, beta)
    g.output("loss", gc.sum(gc.gelu(h) ** 2))
    return g


GRAPHS = {
    "two_layer_grad_f64": lambda: gc.grad(examples.two_layer(n=8, d_in=20, hidden=6, d_out=3, dtype="float64")),
    "two_layer_sgd_f32": lambda: examples.sgd_step(gc.grad(examples.two_layer(n=8, d_in=20, hidden=6, d_out=3)),
                                                   lr=1e-2),
    "mlp_grad_f64": lambda: gc.grad(_mlp()),
    "diamond_f32": _diamond,
    "diamond_f64": lambda: _diamond("float64"),
    "layernorm_gelu_grad_f64": lambda: gc.grad(_layernorm_chain()),
    "unrolled_rnn_grad_f64": lambda: gc.grad(examples.unrolled_rnn(steps=5, batch=3, d_in=4, hidden=6,
                                                                   dtype="float64")),
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_fused_unfused_and_reference_agree(name):
    graph = GRAPHS[name]()
    args = random_arguments(graph, seed=1)
    fns = check_graph(graph, args)  # fused and unfused, each against gc.evaluate
    fused, unfused = fns[True], fns[False]
    assert fused.stats["n_loop_kernels"] <= unfused.stats["n_loop_kernels"]
    assert fused.stats["flops"] == unfused.stats["flops"]


# ---------------------------------------------------------------- random graphs

RANDOM_RTOL = {"float32": 1e-4, "float64": 1e-10}


def _assert_random_outputs(got, expected, what):
    assert list(got) == list(expected) or sorted(got) == sorted(expected)
    for name, e in expected.items():
        rtol = RANDOM_RTOL.get(e.dtype.name, 0)
        assert_close(got[name], e, f"{what}output {name!r}", rtol=rtol)


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_graphs_compiled_match_reference(data):
    """Random DAGs (every op family, broadcasting, nonfinite constants): fused and unfused
    compiled results equal the reference interpreter, NaN-aware.

    The oracle runs the simplified graph: simplify's documented identities (``x * 0 -> 0``
    assumes finite ``x``) may legitimately differ from IEEE on the raw graph when constants
    hold inf or NaN; simplify itself is tested in test_simplify.py."""
    graph = data.draw(graphs(float_to_int_casts=False, max_ops=10), label="graph")
    args = data.draw(arguments(graph), label="args")
    expected = gc.evaluate(gc.simplify(graph), **args)
    fused = gc.compile(graph)(**args)
    _assert_random_outputs(fused, expected, "fused: ")
    unfused = gc.compile(graph, fuse=False)(**args)
    _assert_random_outputs(unfused, expected, "unfused: ")


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_graphs_with_empty_dims(data):
    """Zero-size dimensions anywhere: loops that never run, empty library calls."""
    graph = data.draw(graphs(float_to_int_casts=False, allow_empty=True, max_ops=8), label="graph")
    args = data.draw(arguments(graph), label="args")
    expected = gc.evaluate(gc.simplify(graph), **args)
    _assert_random_outputs(gc.compile(graph)(**args), expected, "fused: ")


# ---------------------------------------------------------------- shapes and strides


def test_zero_d_values():
    g = gc.Graph("scalars")
    s = g.input("s", ())
    t = g.input("t", (), "float64")
    g.output("a", gc.exp(s) * 2 + 1)
    g.output("b", gc.sum(s * s))
    g.output("c", gc.cast(s, "float64") + t)
    g.output("d", gc.sum(gc.broadcast_to(s, (3, 4)), axis=1))
    g.output("e", gc.max(g.input("v", (4,), "float64") * t))
    g.output("same", s)
    args = {"s": np.array(1.5, "float32"), "t": np.array(-2.0), "v": np.array([1.0, -3.0, 2.0, 0.5])}
    check_graph(g, args)
    out = gc.compile(g)(s=np.float32(1.5), t=-2.0, v=[1.0, -3.0, 2.0, 0.5])  # numpy / Python scalars
    assert out["a"].shape == () and out["a"].dtype == np.float32
    assert_close(out["c"], np.array(1.5 - 2.0))


def test_zero_size_dimensions():
    g = gc.Graph("empty")
    x = g.input("x", (0, 3))
    z = g.input("z", (2, 0, 4), "float64")
    g.output("ew", gc.exp(x) + 1)
    g.output("sum0", gc.sum(x, axis=0))  # sums over nothing: zeros
    g.output("sum1", gc.sum(x, axis=1))
    g.output("sum_all", gc.sum(x))
    g.output("mm_outer", x @ gc.transpose(x))
    g.output("mm_inner", gc.transpose(x) @ x)  # contraction over an empty axis: zeros
    g.output("max02", gc.max(z, axis=(0, 2)))
    g.output("min_keep", gc.min(z, axis=2, keepdims=True))
    g.output("sumk", gc.sum(z, axis=1, keepdims=True))
    g.output("concat", gc.concat([x, x * 2], axis=0))
    args = {"x": np.zeros((0, 3), "float32"), "z": np.zeros((2, 0, 4))}
    fns = check_graph(g, args)
    out = fns[True](**args)
    np.testing.assert_array_equal(out["sum0"], np.zeros(3, "float32"))
    np.testing.assert_array_equal(out["mm_inner"], np.zeros((3, 3), "float32"))


def test_broadcast_transposed_and_strided_inputs():
    """Callers may pass any strided array: broadcast (stride 0), transposed, Fortran order,
    reversed, sliced. Results equal those for contiguous copies."""
    g = gc.Graph("strided")
    x = g.input("x", (6, 5), "float64")
    y = g.input("y", (6, 5), "float64")
    g.output("ew", x * y + gc.exp(x))
    g.output("red", gc.sum(x * y, axis=0))
    g.output("red_all", gc.max(x - y))
    g.output("mm", x @ y.T)
    g.output("view_out", x.T)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((12, 10))
    variants = {
        "broadcast": np.broadcast_to(rng.standard_normal(5), (6, 5)),
        "broadcast_col": np.broadcast_to(rng.standard_normal((6, 1)), (6, 5)),
        "transposed": rng.standard_normal((5, 6)).T,
        "fortran": np.asfortranarray(rng.standard_normal((6, 5))),
        "reversed": base[:6, :5][::-1, ::-1],
        "sliced": base[::2, 1::2],
    }
    fused, unfused = gc.compile(g), gc.compile(g, fuse=False)
    for kind, a in variants.items():
        for b in (variants["sliced"], np.ascontiguousarray(variants["transposed"])):
            expected = gc.evaluate(g, x=np.ascontiguousarray(a), y=np.ascontiguousarray(b))
            assert_outputs_close(gc.evaluate(g, x=a, y=b), expected, what=f"reference {kind}: ")
            assert_outputs_close(fused(x=a, y=b), expected, what=f"fused {kind}: ")
            assert_outputs_close(unfused(x=a, y=b), expected, what=f"unfused {kind}: ")


def test_reductions_and_kernels_read_views_by_index():
    """Reductions whose operand is a transposed, sliced (negative steps) or broadcast view."""
    g = gc.Graph("reduce_views")
    x = g.input("x", (3, 4, 5), "float64")
    v = g.input("v", (4, 1), "float64")
    xt = gc.transpose(x, (2, 0, 1))
    for k, axes in enumerate([None, (0,), (1,), (2,), (0, 2), (1, 2)]):
        g.output(f"t{k}", gc.sum(xt * 2, axis=axes, keepdims=True))
        g.output(f"s{k}", gc.max(x[::-1, 1:, ::2], axis=axes))
        g.output(f"b{k}", gc.sum(gc.broadcast_to(v, (3, 4, 5)) + x, axis=axes))
        g.output(f"m{k}", gc.min(gc.exp(xt[:, ::2]) * 0.5, axis=axes))
    rng = np.random.default_rng(12)
    check_graph(g, {"x": rng.standard_normal((3, 4, 5)), "v": rng.standard_normal((4, 1))})


def test_graphs_without_kernels():
    g = gc.Graph("consts_only")
    c = g.const(np.array([1.0, 2.0]))
    g.output("c", gc.exp(c) * 2)
    g.output("d", c)
    fn = gc.compile(g)
    assert_outputs_close(fn(), gc.evaluate(g))
    g = gc.Graph("passthrough")
    x = g.input("x", (2, 3))
    g.output("x", x)
    g.output("t", x.T)
    fn = gc.compile(g)
    X = np.arange(6, dtype="float32").reshape(2, 3)
    out = fn(x=X)
    assert_outputs_close(out, {"x": X, "t": X.T.copy()})
    assert not np.shares_memory(out["x"], X) and not np.shares_memory(out["t"], X)


# ---------------------------------------------------------------- numerics


def test_int32_arithmetic_wraps_like_numpy():
    g = gc.Graph("wrap")
    x = g.input("x", (5,), "int32")
    y = g.input("y", (5,), "int32")
    g.output("add", x + y)
    g.output("mul", x * y)
    g.output("sub", x - y)
    g.output("neg", -x)
    g.output("square", gc.square(x))
    g.output("sum", gc.sum(x * y))
    g.output("plus_max", x + g.const(np.array(2**31 - 1, "int32")))
    g.output("times_min", x * g.const(np.array(-2**31, "int32")))
    X = np.array([2**31 - 1, -2**31, 65536, 123456789, -7], "int32")
    Y = np.array([1, -1, 65536, 987654321, 3], "int32")
    fn = gc.compile(g)
    out = fn(x=X, y=Y)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out["add"], X + Y)
        np.testing.assert_array_equal(out["mul"], X * Y)
        np.testing.assert_array_equal(out["sub"], X - Y)
        np.testing.assert_array_equal(out["neg"], -X)
        np.testing.assert_array_equal(out["square"], X * X)
        np.testing.assert_array_equal(out["sum"], np.sum(X * Y, dtype=np.int32))
        np.testing.assert_array_equal(out["plus_max"], X + np.int32(2**31 - 1))
        np.testing.assert_array_equal(out["times_min"], X * np.int32(-2**31))
    assert_outputs_close(out, gc.evaluate(g, x=X, y=Y))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_extreme_integer_constants(dtype):
    """Scalar constants at the ends of the integer range, inlined into kernels as literals,
    keep their value (and arithmetic with them wraps like numpy)."""
    info = np.iinfo(dtype)
    g = gc.Graph("extreme_consts")
    x = g.input("x", (4,), dtype)
    g.output("plus_min", x + g.const(np.array(info.min, dtype)))
    g.output("plus_max", x + g.const(np.array(info.max, dtype)))
    g.output("max_min", gc.maximum(x, g.const(np.array(info.min, dtype))))
    g.output("eq_min", gc.eq(x, g.const(np.array(info.min, dtype))))
    X = np.array([0, 1, -1, info.min], dtype)
    out = gc.compile(g)(x=X)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out["plus_min"], X + info.min)
        np.testing.assert_array_equal(out["plus_max"], X + info.max)
    np.testing.assert_array_equal(out["max_min"], X)
    np.testing.assert_array_equal(out["eq_min"], X == info.min)
    assert_outputs_close(out, gc.evaluate(g, x=X))


def test_nan_propagates_through_max_min():
    g = gc.Graph("nan")
    x = g.input("x", (3, 4), "float64")
    y = g.input("y", (3, 4), "float64")
    g.output("max_all", gc.max(x))
    g.output("min_all", gc.min(x))
    g.output("max_rows", gc.max(x, axis=1))
    g.output("min_cols", gc.min(x, axis=0, keepdims=True))
    g.output("maximum", gc.maximum(x, y))
    g.output("minimum", gc.minimum(x, y))
    g.output("relu", gc.relu(x))
    X = np.array([[1.0, np.nan, 3.0, -1.0], [np.nan, 2.0, 0.0, 5.0], [1.0, 2.0, 3.0, 4.0]])
    Y = np.array([[np.nan, 1.0, 0.0, np.nan], [0.0, np.nan, 1.0, 6.0], [0.0, 3.0, 1.0, 9.0]])
    for fuse in (True, False):
        out = gc.compile(g, fuse=fuse)(x=X, y=Y)
        assert np.isnan(out["max_all"]) and np.isnan(out["min_all"])
        np.testing.assert_array_equal(out["max_rows"], np.max(X, axis=1))
        np.testing.assert_array_equal(out["min_cols"], np.min(X, axis=0, keepdims=True))
        np.testing.assert_array_equal(out["maximum"], np.maximum(X, Y))  # NaN in either operand wins
        np.testing.assert_array_equal(out["minimum"], np.minimum(X, Y))
        np.testing.assert_array_equal(out["relu"], np.maximum(X, 0.0))
        assert_outputs_close(out, gc.evaluate(g, x=X, y=Y))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_division_by_zero_gives_inf_nan_without_warnings(dtype):
    g = gc.Graph("divzero")
    x = g.input("x", (5,), dtype)
    y = g.input("y", (5,), dtype)
    g.output("div", x / y)
    g.output("recip", gc.reciprocal(y))
    g.output("log", gc.log(y))
    g.output("rsqrt", gc.rsqrt(y))
    g.output("pow", y ** -1.0)
    g.output("sqrt", gc.sqrt(x - 2))
    g.output("sum", gc.sum(x / y))
    X = np.array([1.0, -1.0, 0.0, 2.0, np.inf], dtype)
    Y = np.array([0.0, 0.0, 0.0, -0.0, np.inf], dtype)
    fn = gc.compile(g)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        out = fn(x=X, y=Y)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out["div"], X / Y)  # inf, -inf, nan, -inf, nan
        np.testing.assert_array_equal(out["recip"], 1 / Y)
    assert_outputs_close(out, gc.evaluate(g, x=X, y=Y))


# ---------------------------------------------------------------- fusion structure


def test_sum_of_squares_is_one_loop_kernel():
    g = gc.Graph("sumsq")
    x = g.input("x", (40, 30))
    g.output("s", gc.sum(x * x))
    fn = gc.compile(g)
    assert fn.stats["n_loop_kernels"] == 1
    assert fn.stats["n_kernels"] == 1
    X = np.random.default_rng(0).standard_normal((40, 30)).astype("float32")
    assert_close(fn(x=X)["s"], np.array(np.sum(X.astype(np.float64) ** 2), "float32"))


def test_elementwise_chain_is_one_kernel():
    g = gc.Graph("chain")
    x = g.input("x", (16, 9))
    g.output("y", gc.exp(x) * 2 + 1)
    fn = gc.compile(g)
    assert fn.stats["n_loop_kernels"] == 1 and fn.stats["n_kernels"] == 1
    unfused = gc.compile(g, fuse=False)
    assert unfused.stats["n_loop_kernels"] == 3
    X = np.linspace(-3, 3, 144, dtype="float32").reshape(16, 9)
    assert_close(fn(x=X)["y"], (np.exp(X) * 2 + 1).astype("float32"))


def test_bias_relu_after_matmul_is_one_kernel_plus_one_library_call():
    g = gc.Graph("dense")
    x = g.input("x", (8, 16))
    w = g.param("w", (16, 4))
    b = g.param("b", (4,))
    g.output("h", gc.relu(x @ w + b))
    fn = gc.compile(g)
    assert fn.stats["n_loop_kernels"] == 1
    assert fn.stats["n_library_calls"] == 1
    assert fn.stats["n_kernels"] == 2
    args = random_arguments(g, seed=2)
    assert_outputs_close(fn(**args), gc.evaluate(g, **args))


def test_shared_transcendental_is_computed_once_and_feeds_sibling_kernels():
    """exp(x) read by two consumers is materialized once (not duplicated); the consumers'
    kernels read it, whether or not they are merged into one loop nest with it."""
    g = gc.Graph("shared_exp")
    x = g.input("x", (2, 3))
    e = gc.exp(x)
    g.output("a", e + 1)
    g.output("b", gc.sigmoid(e * 2))
    X = np.array([[0.0, 1.0, -1.0], [2.0, -2.0, 0.5]], "float32")
    fns = check_graph(g, {"x": X})
    fused = fns[True]
    assert fused.stats["n_loop_kernels"] <= 2
    assert sum(v.op == "exp" for ks in fused.kernels.values() for v in ks.outputs) <= 1


def test_broadcasting_never_materializes():
    """x[1, n] + y[n, 1] summed: the n*n broadcast is read by index arithmetic, never stored."""
    n = 600
    g = gc.Graph("outer")
    x = g.input("x", (1, n), "float64")
    y = g.input("y", (n, 1), "float64")
    g.output("s", gc.sum(gc.tanh(x + y), axis=0))
    g.output("col", gc.broadcast_to(x, (3, n)) * 2)  # an output of a broadcast: that one is stored
    fn = gc.compile(g)
    full = n * n * 8
    assert fn.stats["peak_bytes"] < full // 10, fn.stats
    for ks in fn.kernels.values():
        for v in ks.outputs:
            assert v.shape != (n, n), f"kernel {ks.name} materializes the broadcast %{v.id}"
    rng = np.random.default_rng(4)
    args = {"x": rng.standard_normal((1, n)), "y": rng.standard_normal((n, 1))}
    assert_outputs_close(fn(**args), gc.evaluate(g, **args))


WEIRD_NAMES = ("os", "system", "__import__", "eval", "exec", "subprocess", "getattr", "breakpoint")


def _build_named(names):
    g = gc.Graph(names[6])
    a = g.input(names[0], (4, 5))
    b = g.param(names[1], (5,))
    c = g.input(names[2], (4, 5), "float64")
    h = gc.exp(a * b) + 1
    g.output(names[3], gc.sum(h * h, axis=1))
    g.output(names[4], gc.cast(h, "float64") - c)
    g.output(names[5], gc.max(gc.where(a > 0, a, b), axis=0))
    return g


def test_kernel_source_uses_only_compiler_made_identifiers():
    """Names from the graph (inputs, params, outputs, graph name) never reach generated
    source: the kernels of a graph with hostile names equal those of plain names."""
    weird = gc.compile(_build_named(WEIRD_NAMES))
    plain = gc.compile(_build_named(("p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7")))
    assert weird.kernels, "expected loop kernels"
    for ks in weird.kernels.values():
        tokens = {t.string for t in tokenize.generate_tokens(io.StringIO(ks.source).readline)
                  if t.type == tokenize.NAME}
        assert not tokens & set(WEIRD_NAMES), f"kernel {ks.name} uses graph names {tokens & set(WEIRD_NAMES)}"
        assert all(n not in ks.source for n in ("subprocess", "__import__", "breakpoint", "system"))
    assert sorted(k.source for k in weird.kernels.values()) == sorted(k.source for k in plain.kernels.values())
    args = random_arguments(weird.graph, seed=5)
    assert_outputs_close(weird(**args), gc.evaluate(_build_named(WEIRD_NAMES), **args), rtol=RTOL["float32"])


# ---------------------------------------------------------------- training


def test_two_layer_net_trains_with_compiled_sgd():
    graph = examples.sgd_step(gc.grad(examples.two_layer()), lr=1e-4)
    fn = gc.compile(graph)
    rng = np.random.default_rng(0)
    args = {name: rng.standard_normal(v.shape).astype(v.dtype) for name, v in graph.arguments.items()}
    losses = []
    for step in range(60):
        out = fn(**args)
        if step == 0:  # the first step against the reference
            assert_outputs_close(out, gc.evaluate(graph, **args), rtol=1e-4)
        losses.append(float(out["loss"]))
        args["w1"], args["w2"] = out["new_w1"], out["new_w2"]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_two_layer_gradients_match_reference_float64():
    graph = gc.grad(examples.two_layer(n=16, d_in=50, hidden=20, d_out=10, dtype="float64"))
    rng = np.random.default_rng(7)
    args = {name: rng.standard_normal(v.shape) for name, v in graph.arguments.items()}
    expected = gc.evaluate(graph, **args)
    for fuse in (True, False):
        out = gc.compile(graph, fuse=fuse)(**args)
        for name in ("loss", "grad_w1", "grad_w2"):
            assert_close(out[name], expected[name], f"fuse={fuse} {name}", rtol=1e-10)


def test_the_steps_of_an_unrolled_loop_share_kernel_sources():
    """Kernel locals and fault codes are numbered in each kernel's own order, never after graph
    value ids, so the steps of an unrolled RNN compile to the same few sources (compiled once
    each), however many steps there are."""
    distinct = {}
    for steps in (4, 12):
        graph = gc.grad(examples.unrolled_rnn(steps=steps, batch=3, d_in=4, hidden=5, dtype="float64"))
        fn = gc.compile(graph)
        assert len(fn.kernels) > 2 * steps  # a kernel a step at least, forward and backward
        distinct[steps] = len({ks.source for ks in fn.kernels.values()})
        if steps == 12:
            args = random_arguments(graph, seed=2)
            assert_outputs_close(fn(**args), gc.evaluate(graph, **args))
    assert distinct[4] == distinct[12] <= 8
