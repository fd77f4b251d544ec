"""Every primitive of the op table, evaluated through ``gc.evaluate`` against numpy.

Expected values come from numpy (or hand arithmetic) applied to the same arrays, never from
graphc. Each test row records which op it covers; ``test_every_op_has_a_test_row`` fails when
an op is added to ``gc.OPS`` without one.
"""

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
from graphc.examples import two_layer
from graphc.ir.ops import TensorType as T

SOURCES = {"input", "param", "const"}
FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
NUMERIC = INTS + FLOATS
ALL = ("bool",) + NUMERIC

COVERED: set[str] = set()


def covers(*ops):
    COVERED.update(ops)
    return ops


# ---------------------------------------------------------------- helpers


def run(fn, *arrays):
    """Graph with one input per array, output ``fn(*inputs)``; return (graph, evaluated output)."""
    g = gc.Graph("t")
    vals = [g.input(f"a{i}", np.shape(a), np.asarray(a).dtype.name) for i, a in enumerate(arrays)]
    g.output("out", fn(*vals))
    out = gc.evaluate(g, **{f"a{i}": a for i, a in enumerate(arrays)})["out"]
    return g, out


def ops_in(g):
    return {v.op for v in g.nodes}


def data(rng, shape, dtype, low=-3.0, high=3.0):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in INTS:
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def tol(dtype):
    return {"float32": dict(rtol=2e-6, atol=1e-6), "float64": dict(rtol=1e-13, atol=1e-14)}.get(
        dtype, dict(rtol=0, atol=0))


def check(out, expected, dtype, shape=None):
    """``out`` has ``dtype`` and numpy's shape, and matches ``expected`` (computed in float64 for floats)."""
    expected = np.asarray(expected)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    assert out.shape == (expected.shape if shape is None else shape)
    if dtype in FLOATS:
        np.testing.assert_allclose(out.astype(np.float64), expected.astype(np.float64), **tol(dtype))
    else:
        np.testing.assert_array_equal(out, expected.astype(dtype))


_math_erf = np.vectorize(math.erf, otypes=[np.float64])

# name: (dtypes, data range, float64 reference)
UNARY = {
    "neg": (NUMERIC, (-3, 3), lambda x: -x),
    "exp": (FLOATS, (-3, 3), np.exp),
    "log": (FLOATS, (0.1, 5), np.log),
    "sqrt": (FLOATS, (0.0, 5), np.sqrt),
    "rsqrt": (FLOATS, (0.1, 5), lambda x: 1.0 / np.sqrt(x)),
    "abs": (NUMERIC, (-3, 3), np.abs),
    "sign": (NUMERIC, (-3, 3), np.sign),
    "tanh": (FLOATS, (-3, 3), np.tanh),
    "sigmoid": (FLOATS, (-6, 6), lambda x: 1.0 / (1.0 + np.exp(-x))),
    "relu": (NUMERIC, (-3, 3), lambda x: np.where(x > 0, x, 0)),
    "square": (NUMERIC, (-3, 3), lambda x: x * x),
    "reciprocal": (FLOATS, (0.5, 3), lambda x: 1.0 / x),
    "sin": (FLOATS, (-4, 4), np.sin),
    "cos": (FLOATS, (-4, 4), np.cos),
    "log1p": (FLOATS, (-0.9, 3), np.log1p),
    "expm1": (FLOATS, (-3, 3), np.expm1),
    "softplus": (FLOATS, (-5, 5), lambda x: np.log1p(np.exp(x))),
    "erf": (FLOATS, (-3, 3), _math_erf),
    "stop_gradient": (ALL, (-3, 3), lambda x: x),
}
covers(*UNARY)

UNARY_CASES = [(name, dtype, shape) for name, (dtypes, _, _) in UNARY.items() for dtype in dtypes
               for shape in [(3, 4), (), (2, 0, 3)]]


@pytest.mark.parametrize("name,dtype,shape", UNARY_CASES, ids=lambda p: str(p).replace(" ", ""))
def test_unary(name, dtype, shape):
    dtypes, (low, high), ref = UNARY[name]
    rng = np.random.default_rng(1)
    x = data(rng, shape, dtype, low, high)
    if name == "reciprocal":
        x = np.where(rng.random(shape) < 0.5, -x, x).astype(dtype)
    g, out = run(getattr(gc, name), x)
    assert name in ops_in(g)
    expected = ref(x.astype(np.float64)) if dtype in FLOATS else ref(x)
    check(out, expected, dtype, shape)


@pytest.mark.parametrize("name", [n for n, (dtypes, _, _) in UNARY.items() if "int32" not in dtypes])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_float_only_unary_rejects_ints_and_bool(name, dtype):
    g = gc.Graph("t")
    x = g.input("x", (2,), dtype)
    with pytest.raises(gc.DTypeError, match=name):
        getattr(gc, name)(x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_erf_matches_math_erf(dtype):
    pts = np.array([-6.0, -2.5, -1.0, -0.3, -1e-3, 0.0, 1e-3, 0.3, 1.0, 2.5, 6.0], dtype)
    _, out = run(gc.erf, pts)
    expected = [math.erf(float(p)) for p in pts]
    np.testing.assert_allclose(out, expected, rtol=1e-15 if dtype == "float64" else 1e-7, atol=0)
    assert out.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype,big", [("float32", 100.0), ("float64", 100.0), ("float64", 1000.0)])
def test_sigmoid_is_stable_at_large_magnitude(dtype, big):
    x = np.array([-big, -30.0, 0.0, 30.0, big], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, out = run(gc.sigmoid, x)
    assert not np.isnan(out).any()
    expected = [1.0 / (1.0 + math.exp(big)) if big < 700 else 0.0, 1.0 / (1.0 + math.exp(30.0)), 0.5,
                1.0 / (1.0 + math.exp(-30.0)), 1.0]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-40)
    assert out[-1] == 1.0 and out[0] >= 0.0


@pytest.mark.parametrize("dtype,big", [("float32", 100.0), ("float64", 100.0), ("float64", 1000.0)])
def test_softplus_at_large_magnitude(dtype, big):
    x = np.array([-big, -40.0, 0.0, 40.0, big], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, out = run(gc.softplus, x)
    assert np.isfinite(out).all()
    # softplus(x) = x + log1p(exp(-x)) for x > 0, log1p(exp(x)) for x < 0
    expected = [math.log1p(math.exp(-big)), math.log1p(math.exp(-40.0)), math.log(2.0),
                40.0 + math.log1p(math.exp(-40.0)), big]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-40)


# ---------------------------------------------------------------- binary and compare

BINARY = {
    "add": (NUMERIC, np.add),
    "sub": (NUMERIC, np.subtract),
    "mul": (NUMERIC, np.multiply),
    "div": (FLOATS, np.divide),
    "pow": (NUMERIC, np.power),
    "maximum": (NUMERIC, np.maximum),
    "minimum": (NUMERIC, np.minimum),
}
COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
           "eq": np.equal, "ne": np.not_equal}
covers(*BINARY, *COMPARE)


@pytest.mark.parametrize("name,dtype", [(n, d) for n, (ds, _) in BINARY.items() for d in ds])
@pytest.mark.parametrize("shape", [(3, 4), (), (0, 5)], ids=str)
def test_binary(name, dtype, shape):
    rng = np.random.default_rng(2)
    a, b = data(rng, shape, dtype), data(rng, shape, dtype)
    if name == "div":
        b = np.where(np.abs(b) < 0.5, 1.5, b).astype(dtype)
    if name == "pow":
        if dtype in INTS:
            b = data(rng, shape, dtype, 0, 3)
        else:
            a = data(rng, shape, dtype, 0.5, 2.0)
    g, out = run(getattr(gc, name), a, b)
    assert name in ops_in(g)
    ref = BINARY[name][1]
    expected = ref(a.astype(np.float64), b.astype(np.float64)) if dtype in FLOATS else ref(a, b)
    check(out, expected, dtype, shape)


@pytest.mark.parametrize("name", list(COMPARE))
@pytest.mark.parametrize("dtype", ALL)
def test_compare(name, dtype):
    rng = np.random.default_rng(3)
    # a small range of whole numbers, so that ties (equal elements) occur
    a = data(rng, (4, 5), dtype, -2, 2) if dtype == "bool" else rng.integers(-2, 3, (4, 5)).astype(dtype)
    b = data(rng, (4, 5), dtype, -2, 2) if dtype == "bool" else rng.integers(-2, 3, (4, 5)).astype(dtype)
    g, out = run(getattr(gc, name), a, b)
    assert name in ops_in(g)
    assert (a == b).any()
    check(out, COMPARE[name](a, b), "bool")


@pytest.mark.parametrize("name", ["div"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_div_rejects_ints(name, dtype):
    g = gc.Graph("t")
    a, b = g.input("a", (2,), dtype), g.input("b", (2,), dtype)
    with pytest.raises(gc.DTypeError, match="div"):
        gc.div(a, b)


def test_integer_power_with_negative_exponent_is_a_data_error():
    a = np.array([2, 3], np.int64)
    b = np.array([1, -1], np.int64)
    with pytest.raises(gc.DataError):
        run(gc.pow, a, b)


covers("where")


@pytest.mark.parametrize("dtype", ALL)
def test_where(dtype):
    rng = np.random.default_rng(4)
    c = rng.random((3, 4)) < 0.5
    a, b = data(rng, (3, 4), dtype), data(rng, (3, 4), dtype)
    g, out = run(gc.where, c, a, b)
    assert "where" in ops_in(g)
    expected = np.array([[a[i, j] if c[i, j] else b[i, j] for j in range(4)] for i in range(3)], dtype)
    check(out, expected, dtype)


def test_where_broadcasts_condition_and_operands():
    c = np.array([True, False, True, False])
    a = np.arange(3, dtype=np.float32).reshape(3, 1)
    g, out = run(lambda c_, a_: gc.where(c_, a_, -1.0), c, a)
    check(out, np.where(c, a, np.float32(-1.0)), "float32")


covers("checkpoint")


@pytest.mark.parametrize("save", [True, False])
@pytest.mark.parametrize("dtype", ALL)
def test_checkpoint_is_an_identity_carrying_its_mark(dtype, save):
    x = data(np.random.default_rng(0), (3, 2), dtype)
    g, out = run(lambda v: gc.checkpoint(v, save=save), x)
    (node,) = [v for v in g.nodes if v.op == "checkpoint"]
    assert node.attrs == {"save": save}
    check(out, x, dtype)
    assert gc.to_text(gc.from_text(gc.to_text(g))) == gc.to_text(g)


covers("cast")


@pytest.mark.parametrize("src,dst", list(itertools.product(ALL, ALL)))
def test_cast(src, dst):
    values = {"bool": [True, False, True],
              "int32": [-3, -1, 0, 1, 2, 7], "int64": [-3, -1, 0, 1, 2, 7],
              "float32": [-2.75, -1.0, -0.0, 0.0, 0.5, 1.0, 2.5, 3.0],
              "float64": [-2.75, -1.0, -0.0, 0.0, 0.5, 1.0, 2.5, 3.0]}[src]
    x = np.array(values, src)
    g, out = run(lambda v: gc.cast(v, dst), x)
    assert ("cast" in ops_in(g)) == (src != dst)
    check(out, x.astype(dst), dst)


def test_cast_float_to_int_truncates_toward_zero_and_to_bool_tests_nonzero():
    x = np.array([-2.75, -1.0, -0.0, 0.0, 0.5, 1.0, 2.5, 3.9], np.float32)
    _, i = run(lambda v: gc.cast(v, "int32"), x)
    _, b = run(lambda v: gc.cast(v, "bool"), x)
    assert i.tolist() == [-2, -1, 0, 0, 0, 1, 2, 3] and i.dtype == np.int32
    assert b.tolist() == [True, True, False, False, True, True, True, True]


# ---------------------------------------------------------------- reductions

covers("sum", "max", "min")


def _axis_specs(rank):
    specs = [None, ()]
    for r in range(1, rank + 1):
        for combo in itertools.combinations(range(rank), r):
            neg = tuple(a - rank for a in combo)
            if r == 1:
                specs += [combo[0], neg[0]]
            else:
                specs += [combo, neg, tuple(reversed(combo))]
    specs += [(0, -1), (-1, 1, 0)]
    return specs


AXES3 = _axis_specs(3)


@pytest.mark.parametrize("name", ["sum", "max", "min"])
@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("axis", AXES3, ids=repr)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_every_axis_combination(name, dtype, axis, keepdims):
    rng = np.random.default_rng(5)
    x = data(rng, (2, 3, 4), dtype, -5, 5)
    g, out = run(lambda v: getattr(gc, name)(v, axis=axis, keepdims=keepdims), x)
    assert name in ops_in(g)
    ref = {"sum": np.sum, "max": np.max, "min": np.min}[name]
    src = x.astype(np.float64) if dtype in FLOATS else x
    check(out, ref(src, axis=axis, keepdims=keepdims), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", AXES3, ids=repr)
@pytest.mark.parametrize("keepdims", [False, True])
def test_mean_every_axis_combination(dtype, axis, keepdims):
    rng = np.random.default_rng(6)
    x = data(rng, (2, 3, 4), dtype)
    _, out = run(lambda v: gc.mean(v, axis=axis, keepdims=keepdims), x)
    check(out, np.mean(x.astype(np.float64), axis=axis, keepdims=keepdims), dtype)


def test_sum_over_zero_size_axis_is_zero():
    x = np.zeros((3, 0, 2), np.float32)
    _, out = run(lambda v: gc.sum(v, axis=1), x)
    check(out, np.zeros((3, 2)), "float32")
    _, out = run(lambda v: gc.max(v, axis=2), x)  # non-empty axis of an empty array
    check(out, np.zeros((3, 0)), "float32")


def test_float32_sum_is_accurate():
    # 1 + 2**-24 * n: naive float32 accumulation loses every small term
    x = np.full(4097, np.float32(2**-24))
    x[0] = 1.0
    _, out = run(gc.sum, x)
    assert out == np.float32(1.0 + 4096 * 2**-24)


covers("argmax", "argmin")


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -3])
@pytest.mark.parametrize("keepdims", [False, True])
def test_arg_reductions(name, dtype, axis, keepdims):
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (3, 4, 5)).astype(dtype)  # plenty of ties: the first index wins
    g, out = run(lambda v: getattr(gc, name)(v, axis=axis, keepdims=keepdims), x)
    assert name in ops_in(g)
    ref = {"argmax": np.argmax, "argmin": np.argmin}[name]
    check(out, ref(x, axis=axis, keepdims=keepdims), "int64")


def test_argmax_picks_first_of_ties_by_hand():
    x = np.array([[1, 3, 3], [2, 2, 0]], np.int32)
    _, a = run(lambda v: gc.argmax(v, axis=1), x)
    _, b = run(lambda v: gc.argmin(v, axis=0), x)
    _, c = run(gc.argmax, x)
    assert a.tolist() == [1, 0] and b.tolist() == [0, 1, 1] and c.tolist() == 1


# ---------------------------------------------------------------- matmul

covers("matmul")

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 2, 3, 4), (2, 2, 4, 1)),
    ((4,), (4,)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((2, 1, 3, 4), (5, 4, 2)),  # batch broadcasting
    ((3, 4), (2, 4, 5)),
    ((1, 3, 4), (6, 4, 2)),
    ((3, 0), (0, 2)),  # empty contraction: zeros
    ((0, 4), (4, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC)
def test_matmul(sa, sb, dtype):
    rng = np.random.default_rng(8)
    a, b = data(rng, sa, dtype), data(rng, sb, dtype)
    g, out = run(gc.matmul, a, b)
    assert "matmul" in ops_in(g)
    if dtype in FLOATS:
        expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
        assert out.dtype == np.dtype(dtype) and out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    else:
        check(out, np.matmul(a, b), dtype)


def test_matmul_by_hand_and_operator():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[5.0, 6.0], [7.0, 8.0]])
    _, out = run(lambda x, y: x @ y, a, b)
    assert out.tolist() == [[19.0, 22.0], [43.0, 50.0]]
    _, v = run(lambda x, y: x @ y, np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert v.shape == () and v == 32.0


def test_matmul_mixed_dtypes_promote():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    b = np.ones((3, 2), np.float32)
    _, out = run(gc.matmul, a, b)
    check(out, a.astype(np.float64) @ b.astype(np.float64), "float32")


# ---------------------------------------------------------------- layout

covers("transpose")


@pytest.mark.parametrize("axes", [None, *itertools.permutations(range(3)), (-1, 0, 1), (2, -3, -2), (-1, -2, -3)],
                         ids=repr)
def test_transpose(axes):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    g, out = run(lambda v: gc.transpose(v, axes), x)
    if axes is None or tuple(a % 3 for a in axes) != (0, 1, 2):
        assert "transpose" in ops_in(g)
    check(out, np.transpose(x, axes), "float32")


def test_transpose_lower_ranks_and_T():
    m = np.arange(6, dtype=np.int64).reshape(2, 3)
    _, out = run(lambda v: v.T, m)
    check(out, m.T, "int64")
    v1 = np.arange(3.0)
    _, out = run(gc.transpose, v1)
    check(out, v1, "float64")
    s = np.array(2.0)
    _, out = run(gc.transpose, s)
    check(out, s, "float64")


covers("reshape")


@pytest.mark.parametrize("src,shape", [
    ((2, 3, 4), (24,)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1)), ((2, 3, 4), (2, -1, 3)),
    ((2, 3, 4), (1, 24, 1)), ((2, 3, 4), (6, 4)), ((2, 3, 4), (-1, 1)), ((1, 1), ()),
    ((), (1, 1)), ((0, 3), (-1, 3)), ((0, 3), (3, 0)), ((6,), (3, 2)),
], ids=str)
def test_reshape(src, shape):
    x = np.arange(math.prod(src), dtype=np.float64).reshape(src)
    g, out = run(lambda v: gc.reshape(v, shape), x)
    check(out, np.reshape(x, shape), "float64")


@pytest.mark.parametrize("shape", [(5,), (2, 2), (-1, -1), (4, -1)])
def test_reshape_bad_shapes_are_shape_errors(shape):
    g = gc.Graph("t")
    x = g.input("x", (2, 3))
    with pytest.raises(gc.ShapeError):
        gc.reshape(x, shape)


covers("broadcast_to")


@pytest.mark.parametrize("src,shape", [
    ((3, 1), (2, 3, 4)), ((), (2, 3)), ((4,), (3, 4)), ((1,), (0,)), ((1, 1), (5, 1)), ((2, 1, 3), (2, 4, 3)),
], ids=str)
def test_broadcast_to(src, shape):
    x = np.arange(math.prod(src), dtype=np.int32).reshape(src)
    g, out = run(lambda v: gc.broadcast_to(v, shape), x)
    assert "broadcast_to" in ops_in(g)
    check(out, np.broadcast_to(x, shape), "int32")


def test_broadcast_to_incompatible_is_shape_error():
    g = gc.Graph("t")
    x = g.input("x", (3,))
    with pytest.raises(gc.ShapeError):
        gc.broadcast_to(x, (4,))
    with pytest.raises(gc.ShapeError):
        gc.broadcast_to(x, ())


covers("concat")


@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 0)], 1), ([(2, 3), (2, 5)], -1),
    ([(2, 3, 4), (2, 1, 4), (2, 2, 4)], -2), ([(3,)], 0), ([(0, 2), (3, 2)], -2),
], ids=str)
def test_concat(shapes, axis):
    rng = np.random.default_rng(9)
    xs = [data(rng, s, "float64") for s in shapes]
    g, out = run(lambda *vs: gc.concat(vs, axis=axis), *xs)
    check(out, np.concatenate(xs, axis=axis), "float64")


@pytest.mark.parametrize("dtypes,expected", [
    (("int32", "float32"), "float32"), (("int32", "int64"), "int64"), (("bool", "int32"), "int32"),
    (("float32", "float64", "int64"), "float64"), (("int64", "float32"), "float32"),
])
def test_concat_promotes_dtypes(dtypes, expected):
    rng = np.random.default_rng(10)
    xs = [data(rng, (2, i + 1), d) for i, d in enumerate(dtypes)]
    g, out = run(lambda *vs: gc.concat(vs, axis=-1), *xs)
    check(out, np.concatenate([x.astype(expected) for x in xs], axis=1), expected)


def test_concat_mismatched_shapes_is_shape_error():
    g = gc.Graph("t")
    a, b = g.input("a", (2, 3)), g.input("b", (3, 3))
    with pytest.raises(gc.ShapeError):
        gc.concat([a, b], axis=1)


# ---------------------------------------------------------------- slicing (Value indexing)

covers("slice")

X456 = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
INDICES = [
    0, -1, 3, np.int64(2), (1, 2), (-1, -2, -3), (3, 4, 5),
    slice(None), slice(1, 3), slice(None, None, -1), slice(3, 0, -2), slice(-2, None), slice(None, -10, -1),
    slice(100, -100, -1), slice(-100, 100), slice(None, None, 3),
    (slice(1, 1),), (slice(3, 1),), (slice(10, 20),), (slice(None), slice(4, 4, -1)),
    Ellipsis, (Ellipsis, 0), (Ellipsis, slice(None, None, -2)), (0, Ellipsis, 1), (1, Ellipsis),
    (Ellipsis, 1, 2, 3), None, (None, 0, None), (slice(None), None, slice(None, None, -1)),
    (None, Ellipsis, None), (), (slice(None, None, 2), slice(None, None, -3), slice(1, None, 4)),
    (-4, slice(-1, -6, -2), -6), (2, None, slice(0, 0)),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_indexing_matches_numpy(index):
    g, out = run(lambda v: v[index], X456)
    check(out, X456[index], "float32")


def test_indexing_builds_slice_nodes():
    g, _ = run(lambda v: v[1:3, ::-1], X456)
    assert "slice" in ops_in(g)
    g, _ = run(lambda v: v[:, :, :], X456)
    assert "slice" not in ops_in(g)


def test_indexing_zero_d_and_empty_axis():
    s = np.array(3.5)
    _, out = run(lambda v: v[()], s)
    check(out, s[()], "float64")
    _, out = run(lambda v: v[None, ...], s)
    check(out, s[None, ...], "float64")
    e = np.zeros((0, 3), np.float32)
    _, out = run(lambda v: v[::-1, 1], e)
    check(out, e[::-1, 1], "float32")


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_indexing_hypothesis(d):
    shape = d.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    index = d.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    x = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    _, out = run(lambda v: v[index], x)
    check(out, x[index], "int64")


# ---------------------------------------------------------------- take_along_axis and one_hot

covers("take_along_axis")


@pytest.mark.parametrize("xs,idx_shape,axis", [
    ((3, 5), (3, 2), 1), ((3, 5), (3, 2), -1), ((3, 5), (4, 5), 0), ((2, 3, 4), (2, 3, 1), -1),
    ((3, 5), (1, 2), 1), ((1, 5), (3, 2), 1), ((3, 5), (3, 0), 1),
], ids=str)
@pytest.mark.parametrize("dtype,idx_dtype", [("float32", "int64"), ("int64", "int32"), ("bool", "int64"),
                                             ("float64", "int32")])
def test_take_along_axis(xs, idx_shape, axis, dtype, idx_dtype):
    rng = np.random.default_rng(11)
    x = data(rng, xs, dtype)
    idx = rng.integers(0, xs[axis], size=idx_shape).astype(idx_dtype)
    g, out = run(lambda a, i: gc.take_along_axis(a, i, axis=axis), x, idx)
    assert "take_along_axis" in ops_in(g)
    check(out, np.take_along_axis(x, idx, axis=axis), dtype)


def test_take_along_axis_by_hand():
    x = np.array([[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]])
    _, out = run(lambda a, i: gc.take_along_axis(a, i, axis=1), x, np.array([[2], [0]]))
    assert out.tolist() == [[12.0], [20.0]]


@pytest.mark.parametrize("bad", [3, -1, 100])
def test_take_along_axis_out_of_range_is_data_error(bad):
    x = np.zeros((2, 3), np.float32)
    idx = np.array([[0], [bad]], np.int64)
    g = gc.Graph("t")
    a, i = g.input("a", x.shape), g.input("i", idx.shape, "int64")
    g.output("out", gc.take_along_axis(a, i, axis=1))  # building is fine: data is unknown
    with pytest.raises(gc.DataError):
        gc.evaluate(g, a=x, i=idx)


covers("one_hot")


@pytest.mark.parametrize("labels_shape", [(5,), (2, 3), (), (0,)], ids=str)
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("label_dtype", INTS)
def test_one_hot(labels_shape, dtype, label_dtype):
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 4, size=labels_shape).astype(label_dtype)
    g, out = run(lambda v: gc.one_hot(v, 4, dtype), labels)
    assert "one_hot" in ops_in(g)
    check(out, np.eye(4)[labels], dtype)


@pytest.mark.parametrize("bad", [4, -1, 99])
def test_one_hot_out_of_range_is_data_error(bad):
    g = gc.Graph("t")
    lab = g.input("lab", (3,), "int64")
    g.output("oh", gc.one_hot(lab, 4))
    with pytest.raises(gc.DataError):
        gc.evaluate(g, lab=np.array([0, bad, 1]))


covers("pad")


def np_pad(x, low, high, interior):
    """Independent pad: place x[k] at lo + k*(i+1) along every axis of a zero array."""
    shape = tuple(lo + hi + (n + (n - 1) * i if n else 0) for n, lo, hi, i in zip(x.shape, low, high, interior))
    out = np.zeros(shape, x.dtype)
    for index in np.ndindex(*x.shape):
        out[tuple(lo + k * (i + 1) for k, lo, i in zip(index, low, interior))] = x[index]
    return out


@pytest.mark.parametrize("shape,low,high,interior", [
    ((3,), (1,), (2,), (1,)), ((2, 3), (0, 1), (1, 0), (0, 0)), ((2, 3), (1, 0), (0, 2), (2, 1)),
    ((0, 2), (1, 1), (1, 1), (1, 1)), ((), (), (), ()), ((1, 1, 2), (0, 0, 0), (0, 0, 0), (0, 0, 3)),
], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_pad(shape, low, high, interior, dtype):
    x = (np.arange(math.prod(shape)).reshape(shape) + 1).astype(dtype)
    g, out = run(lambda v: gc.pad(v, low, high, interior), x)
    assert "pad" in ops_in(g)
    check(out, np_pad(x, low, high, interior), dtype)
    if x.ndim and not any(interior):
        check(out, np.pad(x, list(zip(low, high))), dtype)


def test_pad_by_hand_and_default_interior():
    _, out = run(lambda v: gc.pad(v, (1,), (2,), (1,)), np.array([1.0, 2.0, 3.0]))
    assert out.tolist() == [0, 1, 0, 2, 0, 3, 0, 0]
    _, out = run(lambda v: gc.pad(v, (1, 0), (0, 1)), np.array([[1, 2]], np.int32))
    assert out.tolist() == [[0, 0, 0], [1, 2, 0]] and out.dtype == np.int32


def test_pad_negative_is_shape_error():
    g = gc.Graph("t")
    x = g.input("x", (3,))
    with pytest.raises(gc.ShapeError):
        gc.pad(x, (-1,), (0,))


covers("scatter_add")


def np_scatter_add(updates, idx, axis, size):
    shape = updates.shape[:axis] + (size,) + updates.shape[axis + 1:]
    out = np.zeros(shape, np.float64 if updates.dtype.kind == "f" else updates.dtype)
    for index in np.ndindex(*updates.shape):
        target = list(index)
        target[axis] = idx[index]
        out[tuple(target)] += updates[index]
    return out


@pytest.mark.parametrize("ushape,axis,size", [((3,), 0, 4), ((2, 5), 1, 3), ((4, 3), 0, 2), ((2, 3, 4), -1, 6),
                                              ((2, 0), 1, 3), ((3, 2), 1, 0)], ids=str)
@pytest.mark.parametrize("dtype,idx_dtype", [("float32", "int64"), ("float64", "int32"), ("int64", "int64")])
def test_scatter_add(ushape, axis, size, dtype, idx_dtype):
    if size == 0:
        ushape = ushape[:axis % len(ushape)] + (0,) + ushape[axis % len(ushape) + 1:]
    rng = np.random.default_rng(14)
    u = data(rng, ushape, dtype)
    idx = rng.integers(0, max(size, 1), size=ushape).astype(idx_dtype)
    g, out = run(lambda a, i: gc.scatter_add(a, i, axis, size), u, idx)
    assert "scatter_add" in ops_in(g)
    check(out, np_scatter_add(u, idx, axis % len(ushape), size), dtype)


def test_scatter_add_by_hand_accumulates_repeats():
    _, out = run(lambda a, i: gc.scatter_add(a, i, 0, 3), np.array([1.0, 2.0, 3.0]), np.array([0, 2, 0]))
    assert out.tolist() == [4.0, 0.0, 2.0]


@pytest.mark.parametrize("bad", [3, -1])
def test_scatter_add_out_of_range_is_data_error(bad):
    g = gc.Graph("t")
    u, i = g.input("u", (2,)), g.input("i", (2,), "int64")
    g.output("out", gc.scatter_add(u, i, 0, 3))
    with pytest.raises(gc.DataError):
        gc.evaluate(g, u=np.ones(2, np.float32), i=np.array([0, bad]))


covers("take", "index_add")


@pytest.mark.parametrize("xs,idx_shape,axis", [
    ((5, 3), (4,), 0), ((5, 3), (2, 3), 0), ((3, 5), (2,), 1), ((2, 4, 3), (2, 2), -2), ((5, 3), (), 0),
    ((5, 3), (0,), 0), ((5,), (3, 2), 0),
], ids=str)
@pytest.mark.parametrize("dtype,idx_dtype", [("float32", "int64"), ("int32", "int32"), ("float64", "int64")])
def test_take_and_its_transpose_index_add(xs, idx_shape, axis, dtype, idx_dtype):
    rng = np.random.default_rng(15)
    x = data(rng, xs, dtype)
    idx = rng.integers(0, xs[axis], size=idx_shape).astype(idx_dtype)
    g, out = run(lambda a, i: gc.take(a, i, axis=axis), x, idx)
    assert "take" in ops_in(g)
    check(out, np.take(x, idx, axis=axis), dtype)
    a = axis % len(xs)
    u = data(rng, out.shape, dtype)
    g, out = run(lambda a_, i: gc.index_add(a_, i, axis=a, size=xs[a]), u, idx)
    assert "index_add" in ops_in(g)
    expected = np.zeros(xs, np.float64 if u.dtype.kind == "f" else u.dtype)
    for p in np.ndindex(*idx.shape):  # each slice of u at the indices' axes goes to row idx[p]
        target = (slice(None),) * a + (idx[p],)
        expected[target] += u[(slice(None),) * a + p]
    check(out, expected, dtype)


def test_index_add_by_hand_accumulates_repeated_rows():
    _, out = run(lambda a, i: gc.index_add(a, i, 0, 3), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
                 np.array([2, 0, 2]))
    assert out.tolist() == [[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]]


@pytest.mark.parametrize("op", ["take", "index_add"])
@pytest.mark.parametrize("bad", [3, -1])
def test_take_and_index_add_out_of_range_are_data_errors(op, bad):
    g = gc.Graph("t")
    u, i = g.input("u", (2, 2)), g.input("i", (2,), "int64")
    g.output("out", gc.take(u, i) if op == "take" else gc.index_add(u, i, 0, 3))
    with pytest.raises(gc.DataError, match=f"{op}: index {bad} is out of range"):
        gc.evaluate(g, u=np.ones((2, 2), np.float32), i=np.array([0, bad]))


@pytest.mark.parametrize("build,match", [
    (lambda g, x, i: gc.take(x, gc.cast(i, "float32")), "indices"),
    (lambda g, x, i: gc.take(x, i, axis=2), "axis"),
    (lambda g, x, i: gc.index_add(x, i, 0, -1), "negative"),
    (lambda g, x, i: gc.index_add(x, gc.reshape(i, (1, 4)), 0, 3), "indices' shape"),
    (lambda g, x, i: gc.index_add(x, i, 1, 3), "indices' shape"),
], ids=["float indices", "axis", "negative size", "shape", "axis shape"])
def test_take_and_index_add_bad_operands_are_named(build, match):
    g = gc.Graph("t")
    x, i = g.input("x", (4, 3)), g.input("i", (4,), "int64")
    with pytest.raises(gc.GraphcError, match=match):
        build(g, x, i)


# ---------------------------------------------------------------- broadcasting corner cases


@pytest.mark.parametrize("sa,sb", [
    ((), (3, 4)), ((3, 4), ()), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((2, 1, 4), (3, 1)),
    ((0, 4), (1, 4)), ((3, 0), (3, 1)), ((1,), (0,)), ((), ()), ((5, 1, 1), (1, 1, 1)),
], ids=str)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "maximum", "lt"])
def test_value_broadcasting(sa, sb, name):
    rng = np.random.default_rng(13)
    a, b = data(rng, sa, "float64"), data(rng, sb, "float64")
    ref = {**{k: v[1] for k, v in BINARY.items()}, **COMPARE}[name]
    _, out = run(getattr(gc, name), a, b)
    check(out, ref(a, b), "bool" if name in COMPARE else "float64")


def _scalar_cases():
    x = np.array([[1.0, -2.0, 3.5], [0.5, 4.0, -1.5]], np.float32)
    return [
        ("2 - x", lambda v: 2 - v, lambda a: 2 - a),
        ("x - 2", lambda v: v - 2, lambda a: a - 2),
        ("2.5 / x", lambda v: 2.5 / v, lambda a: 2.5 / a),
        ("x / 4", lambda v: v / 4, lambda a: a / 4),
        ("x ** 2", lambda v: v ** 2, lambda a: a ** 2),
        ("2 ** x", lambda v: 2 ** v, lambda a: 2.0 ** a),
        ("3 * x + 1", lambda v: 3 * v + 1, lambda a: 3 * a + 1),
        ("-x", lambda v: -v, lambda a: -a),
        ("x > 0", lambda v: v > 0, lambda a: a > 0),
        ("0 < x", lambda v: 0 < v, lambda a: 0 < a),
        ("np_row + x", lambda v: np.array([1.0, 2.0, 3.0], np.float32) + v,
         lambda a: np.array([1.0, 2.0, 3.0]) + a),
        ("x * np_col", lambda v: v * np.array([[2.0], [3.0]], np.float32),
         lambda a: a * np.array([[2.0], [3.0]])),
        ("np_0d - x", lambda v: np.array(1.0, np.float32) - v, lambda a: 1.0 - a),
        ("maximum(x, 0.5)", lambda v: gc.maximum(v, 0.5), lambda a: np.maximum(a, 0.5)),
        ("minimum(1, x)", lambda v: gc.minimum(1, v), lambda a: np.minimum(1, a)),
    ], x


@pytest.mark.parametrize("case", range(len(_scalar_cases()[0])), ids=[c[0] for c in _scalar_cases()[0]])
def test_scalar_broadcasting(case):
    cases, x = _scalar_cases()
    _, fn, ref = cases[case]
    _, out = run(fn, x)
    expected = ref(x.astype(np.float64))
    check(out, expected, "bool" if expected.dtype == bool else "float32")


def test_zero_d_input_with_python_scalars():
    s = np.array(3.0, np.float64)
    _, out = run(lambda v: (2 - v) * (v + 1) / 4, s)
    check(out, np.array((2 - 3.0) * (3.0 + 1) / 4), "float64")


BROADCAST_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum,
                 "minimum": np.minimum, "lt": np.less, "ge": np.greater_equal, "eq": np.equal,
                 "ne": np.not_equal, "div": np.divide}


@settings(max_examples=50, deadline=None)
@given(st.data(), st.sampled_from(sorted(BROADCAST_OPS)))
def test_binary_broadcasting_hypothesis(d, name):
    shapes = d.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0,
                                                      max_side=4))
    elems = st.floats(-8, 8, width=64) if name != "div" else st.floats(0.5, 8, width=64)
    a = d.draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=st.integers(-3, 3).map(float)))
    b = d.draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=elems))
    _, out = run(getattr(gc, name), a, b)
    expected = BROADCAST_OPS[name](a, b)
    assert out.shape == shapes.result_shape
    check(out, expected, expected.dtype.name)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_where_broadcasting_hypothesis(d):
    shapes = d.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=0,
                                                      max_side=3))
    c = d.draw(hnp.arrays(np.bool_, shapes.input_shapes[0]))
    a = d.draw(hnp.arrays(np.int32, shapes.input_shapes[1], elements=st.integers(-9, 9)))
    b = d.draw(hnp.arrays(np.int32, shapes.input_shapes[2], elements=st.integers(-9, 9)))
    _, out = run(gc.where, c, a, b)
    check(out, np.where(c, a, b), "int32", shapes.result_shape)


@settings(max_examples=30, deadline=None)
@given(st.data(), st.sampled_from(["left", "right"]), st.floats(-4, 4, width=32))
def test_python_scalar_on_either_side_hypothesis(d, side, scalar):
    shape = d.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    x = d.draw(hnp.arrays(np.float32, shape, elements=st.floats(-4, 4, width=32)))
    fn = (lambda v: scalar - v) if side == "left" else (lambda v: v - scalar)
    _, out = run(fn, x)
    s32 = np.float32(scalar)
    expected = s32 - x if side == "left" else x - s32  # numpy in float32, as the value is float32
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------- coverage of the op table


def test_every_op_has_a_test_row():
    assert COVERED == set(gc.OPS) - SOURCES


def test_source_ops_are_the_only_ops_without_reference():
    assert {name for name, op in gc.OPS.items() if op.reference is None} == SOURCES


# ---------------------------------------------------------------- cost model

@pytest.mark.parametrize("batch,m,k,n,dtype", [((), 3, 4, 5, "float32"), ((2,), 3, 4, 5, "float64"),
                                               ((2, 3), 7, 11, 13, "float32"), ((), 64, 1000, 100, "float32")])
def test_matmul_cost(batch, m, k, n, dtype):
    a, b, out = T(batch + (m, k), dtype), T(batch + (k, n), dtype), T(batch + (m, n), dtype)
    cost = gc.OPS["matmul"].cost((a, b), out)
    item = np.dtype(dtype).itemsize
    nb = math.prod(batch)
    assert cost.flops == 2 * m * n * k * nb
    assert cost.bytes_read == (m * k + k * n) * nb * item
    assert cost.bytes_written == m * n * nb * item
    assert cost.transcendentals == 0


def test_matmul_cost_from_built_graph_nodes():
    g = gc.Graph("t")
    a, b = g.input("a", (6, 3, 4)), g.input("b", (6, 4, 5))
    out = a @ b
    (node,) = [v for v in g.nodes if v.op == "matmul"]
    cost = gc.OPS["matmul"].cost(tuple(i.type for i in node.inputs), node.type)
    assert cost.flops == 2 * 6 * 3 * 4 * 5
    assert cost.bytes_read == np.zeros((6, 3, 4), np.float32).nbytes + np.zeros((6, 4, 5), np.float32).nbytes
    assert cost.bytes_written == np.zeros(out.shape, np.float32).nbytes


TRANSCENDENTAL = ["exp", "log", "tanh", "sigmoid", "sin", "cos", "log1p", "expm1", "softplus", "erf"]
NOT_TRANSCENDENTAL = ["add", "sub", "mul", "neg", "abs", "relu", "maximum", "minimum", "where", "cast",
                      "square", "lt", "eq", "sum", "max", "transpose", "reshape", "broadcast_to", "matmul"]


def test_transcendental_flags():
    for name in TRANSCENDENTAL:
        assert gc.OPS[name].transcendental, name
    for name in NOT_TRANSCENDENTAL:
        assert not gc.OPS[name].transcendental, name


@pytest.mark.parametrize("name", ["exp", "tanh", "erf"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_cost_counts_transcendentals_and_bytes(name, dtype):
    t = T((3, 4), dtype)
    cost = gc.OPS[name].cost((t,), t)
    nbytes = 12 * np.dtype(dtype).itemsize
    assert cost.transcendentals == 12
    assert cost.flops >= 12
    assert cost.bytes_read == nbytes and cost.bytes_written == nbytes


def test_elementwise_and_reduction_costs():
    a = T((5, 6), "float64")
    c = gc.OPS["add"].cost((a, a), a)
    assert c == (30, 0, 2 * 30 * 8, 30 * 8)
    lt = gc.OPS["lt"].cost((a, a), T((5, 6), "bool"))
    assert lt.bytes_written == 30 and lt.bytes_read == 2 * 240 and lt.transcendentals == 0
    s = gc.OPS["sum"].cost((T((4, 5, 6), "float32"),), T((4,), "float32"))
    assert s.flops == 120 and s.bytes_read == 480 and s.bytes_written == 16 and s.transcendentals == 0
    cast = gc.OPS["cast"].cost((T((10,), "int32"),), T((10,), "float64"))
    assert cast.bytes_read == 40 and cast.bytes_written == 80
    bt = gc.OPS["broadcast_to"].cost((T((1, 6), "float32"),), T((5, 6), "float32"))
    assert bt.bytes_read == 24 and bt.bytes_written == 120


def test_cost_bytes_equal_nbytes_for_every_node_of_a_graph():
    g = two_layer(n=8, d_in=16, hidden=4, d_out=3)
    for v in g.nodes:
        if v.op in SOURCES:
            continue
        cost = gc.OPS[v.op].cost(tuple(i.type for i in v.inputs), v.type)
        assert cost.bytes_read == sum(np.zeros(i.shape, i.dtype).nbytes for i in v.inputs), v.op
        assert cost.bytes_written == np.zeros(v.shape, v.dtype).nbytes, v.op
        assert cost.transcendentals == (math.prod(v.shape) if gc.OPS[v.op].transcendental else 0)


covers("windows", "fold", "copy")

WINDOWS = [((6,), (2,), (1,), (1,)), ((7,), (3,), (2,), (2,)), ((2, 5, 6), (2, 3), (1, 2), (2, 1)),
           ((2, 3, 4, 4), (1, 1), (1, 1), (1, 1)), ((3, 5, 5), (5, 5), (1, 1), (1, 1)), ((2, 8), (3,), (3,), (1,))]


def _window_positions(shape, window, strides, dilation):
    """(window offset, window place, the element it reads) for every element of ``windows``."""
    k = len(window)
    counts = [(n - d * (w - 1) - 1) // s + 1 for n, w, s, d in zip(shape[-k:], window, strides, dilation)]
    for offset in np.ndindex(*window):
        for place in np.ndindex(*counts):
            yield offset, place, tuple(j * s + i * d for i, j, s, d in zip(offset, place, strides, dilation))


@pytest.mark.parametrize("shape,window,strides,dilation", WINDOWS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_windows_reads_each_window_element_at_its_place(shape, window, strides, dilation, dtype):
    x = data(np.random.default_rng(3), shape, dtype)
    g, out = run(lambda a: gc.windows(a, window, strides, dilation), x)
    assert "windows" in ops_in(g)
    expected = np.zeros(out.shape, dtype)
    for offset, place, at in _window_positions(shape, window, strides, dilation):
        expected[(Ellipsis,) + offset + place] = x[(Ellipsis,) + at]
    check(out, expected, dtype)


@pytest.mark.parametrize("shape,window,strides,dilation", WINDOWS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_fold_adds_each_window_element_back_at_its_place(shape, window, strides, dilation, dtype):
    k = len(window)
    counts = tuple((n - d * (w - 1) - 1) // s + 1 for n, w, s, d in zip(shape[-k:], window, strides, dilation))
    u = data(np.random.default_rng(4), shape[:-k] + window + counts, dtype)
    g, out = run(lambda a: gc.fold(a, shape[-k:], window, strides, dilation), u)
    assert "fold" in ops_in(g)
    expected = np.zeros(shape, np.float64 if dtype in FLOATS else dtype)
    for offset, place, at in _window_positions(shape, window, strides, dilation):
        expected[(Ellipsis,) + at] += u[(Ellipsis,) + offset + place]
    check(out, expected, dtype)


def test_copy_is_the_identity_in_a_buffer_of_its_own():
    x = np.arange(12.0).reshape(3, 4)
    g = gc.Graph("t")
    a = g.input("a", (3, 4), "float64")
    g.output("out", g.add_node("copy", [gc.transpose(a)], {}))
    out = gc.evaluate(g, a=x)["out"]
    np.testing.assert_array_equal(out, x.T)
    assert out.flags.c_contiguous and not np.shares_memory(out, x)


covers("random_uniform")


def test_random_uniform_reads_its_key_and_draws_in_zero_one():
    _, out = run(lambda k: gc.random_uniform(k, (3, 4), "float32"), np.array(9, np.int32))
    assert out.dtype == np.float32 and out.shape == (3, 4) and 0 <= out.min() and out.max() < 1
    _, again = run(lambda k: gc.random_uniform(k, (3, 4), "float32"), np.array(9, np.int64))
    np.testing.assert_array_equal(out, again)  # the key's value, whatever its int dtype
