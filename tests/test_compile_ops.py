"""Every primitive op, compiled (fused and unfused), against the reference interpreter.

Numba compiles each distinct kernel once (a fraction of a second each), so ops are grouped into
a few graphs: one graph holds all unary ops of a dtype as separate outputs, another all binary
ops, and so on. ``test_every_op_has_a_compiled_row`` checks that the cases below, after
simplification (what the compiler actually lowers), contain every non-source op of ``gc.OPS``
in float32 and float64, and every op that accepts integers in int32 and int64.
"""

import itertools

import numpy as np
import pytest

from compiled import RTOL, assert_outputs_close  # sets GRAPHC_CACHE_DIR first

import graphc as gc
from graphc.codegen import numba_cpu

# element count of the "large" cases: just above the size where kernels go parallel (capped)
LARGE = max(1 << 16, min(getattr(numba_cpu, "PARALLEL_MIN", 1 << 16), 1 << 21)) + 4096

SOURCES = ("input", "param", "const")
FLOATS = ("float32", "float64")
INTS = ("int32", "int64")

FLOAT_UNARY = ("neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign", "tanh", "sigmoid", "relu", "square",
               "reciprocal", "sin", "cos", "log1p", "expm1", "softplus", "erf", "stop_gradient", "checkpoint")
INT_UNARY = ("neg", "abs", "sign", "relu", "square", "stop_gradient", "checkpoint")
FLOAT_BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
INT_BINARY = ("add", "sub", "mul", "pow", "maximum", "minimum")
COMPARES = ("lt", "le", "gt", "ge", "eq", "ne")
REDUCTIONS = ("sum", "max", "min")
ALL_AXES = [axes for r in range(4) for axes in itertools.combinations(range(3), r)]  # 8 subsets of (0, 1, 2)

# ops that accept integer operands, each of which must be compiled for int32 and int64 too
INT_OPS = set(INT_UNARY + INT_BINARY + COMPARES + REDUCTIONS) | {
    "where", "cast", "argmax", "argmin", "matmul", "transpose", "reshape", "broadcast_to", "concat", "pad",
    "slice", "take_along_axis", "scatter_add", "take", "index_add", "windows", "fold", "copy"}

CASES = {}  # name -> builder() returning (graph, args, rtol, atol)
FUSED_ONLY = set()  # cases whose unfused compile would only add compile time, not coverage


def case(name, fused_only=False):
    def register(fn):
        CASES[name] = fn
        if fused_only:
            FUSED_ONLY.add(name)
        return fn
    return register


def _rng(tag: str):
    return np.random.default_rng(sum(map(ord, tag)))  # deterministic per tag


def _float_specials(dtype):
    return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 100.0, -100.0], dtype)


def _tiny(dtype):
    """Absolute tolerance for elementwise results: differences below the smallest normal number
    (in subnormal results, e.g. sigmoid(-100) in float32) do not count."""
    return float(np.finfo(dtype).tiny)


# ---------------------------------------------------------------- elementwise


def _unary_float(dtype):
    g = gc.Graph(f"unary_{dtype}")
    x = g.input("x", (4, 8), dtype)
    for op in FLOAT_UNARY:
        g.output(op, getattr(gc, op)(x))
    data = (_rng(dtype).standard_normal((4, 8)) * 2).astype(dtype)
    data[0] = _float_specials(dtype)
    data[1, :4] = [0.5, -0.5, 1e-6, -1e-6]  # log1p/expm1/erf near zero
    return g, {"x": data}, RTOL[dtype], _tiny(dtype)


for _dt in FLOATS:
    case(f"unary_{_dt}")(lambda _dt=_dt: _unary_float(_dt))


def _unary_sweep(dtype):
    """Each unary op over a dense sweep of magnitudes 1e-8 .. 200 of both signs: catches
    approximations (e.g. a rational float32 tanh) that are off somewhere in their range."""
    g = gc.Graph(f"unary_sweep_{dtype}")
    x = g.input("x", (4000,), dtype)
    for op in FLOAT_UNARY:
        g.output(op, getattr(gc, op)(x))
    mags = np.logspace(-8, np.log10(200), 2000)
    return g, {"x": np.concatenate([mags, -mags]).astype(dtype)}, RTOL[dtype], _tiny(dtype)


for _dt in FLOATS:
    case(f"unary_sweep_{_dt}", fused_only=True)(lambda _dt=_dt: _unary_sweep(_dt))


def _int_extremes(dtype, shape, rng, low=-1000, high=1000):
    info = np.iinfo(dtype)
    data = rng.integers(low, high, size=shape).astype(dtype)
    flat = data.reshape(-1)
    flat[:6] = [info.min, info.max, info.min + 1, -1, 0, 1]
    return data


def _unary_int(dtype):
    g = gc.Graph(f"unary_{dtype}")
    x = g.input("x", (3, 7), dtype)
    for op in INT_UNARY:
        g.output(op, getattr(gc, op)(x))
    data = _int_extremes(dtype, (3, 7), _rng(dtype))
    data[2, :3] = [46341, 3037000500 if dtype == "int64" else 65536, -46341]  # squares that overflow
    return g, {"x": data}, 0, 0


for _dt in INTS:
    case(f"unary_{_dt}")(lambda _dt=_dt: _unary_int(_dt))


def _binary_float(dtype):
    g = gc.Graph(f"binary_{dtype}")
    x = g.input("x", (4, 8), dtype)
    y = g.input("y", (8,), dtype)  # broadcast along rows (a stride-0 read)
    z = g.input("z", (4, 1), dtype)  # broadcast along columns
    for op in FLOAT_BINARY + COMPARES:
        fn = getattr(gc, op)
        g.output(f"{op}_xy", fn(x, y))
        g.output(f"{op}_zx", fn(z, x))
        g.output(f"{op}_x_scalar", fn(x, 1.5))
        if op in ("sub", "div", "pow", "lt"):
            g.output(f"{op}_scalar_x", fn(-2.0, x))
    g.output("where_xy", gc.where(x > y, x, y))
    g.output("where_scalar", gc.where(z < 0, 0.25, x))
    g.output("where_nan", gc.where(gc.ne(x, x), -1.0, x))  # NaN test in the condition
    rng = _rng("binary" + dtype)
    xs = rng.standard_normal((4, 8)).astype(dtype)
    xs[0] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 2.0, -3.0]
    xs[1] = [0.0, -1.0, 5.0, np.inf, -np.inf, 4.0, 1e30, -2.5]  # pow: 0**neg, neg**frac, overflow
    ys = np.array([1.0, np.inf, np.inf, 0.0, -0.0, np.nan, -0.5, 0.0], dtype)  # x/0, x/-0, 0/0, inf-inf
    zs = np.array([[0.0], [-0.0], [np.nan], [2.0]], dtype)
    return g, {"x": xs, "y": ys, "z": zs}, RTOL[dtype], _tiny(dtype)


for _dt in FLOATS:
    case(f"binary_{_dt}")(lambda _dt=_dt: _binary_float(_dt))


def _constant_powers(dtype):
    """pow by constants, strength-reduced in the kernels (codegen/powers.py), on special values."""
    g = gc.Graph(f"pow_constant_{dtype}")
    x = g.input("x", (3, 8), dtype)
    for k, c in enumerate((0, 1, 2, 3, 16, -1, -2, -5, 0.5, -0.5, 1.5, -2.5)):
        g.output(f"pow_{k}", x ** c)
    xs = _rng("pow" + dtype).standard_normal((3, 8)).astype(dtype) * 3
    xs[0] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e30]
    return g, {"x": xs}, RTOL[dtype], _tiny(dtype)


for _dt in FLOATS:
    case(f"pow_constant_{_dt}", fused_only=True)(lambda _dt=_dt: _constant_powers(_dt))


def _binary_int(dtype):
    g = gc.Graph(f"binary_{dtype}")
    x = g.input("x", (4, 6), dtype)
    y = g.input("y", (6,), dtype)
    e = g.input("e", (4, 6), dtype)  # non-negative exponents for pow
    for op in INT_BINARY + COMPARES:
        fn = getattr(gc, op)
        rhs = e if op == "pow" else y
        g.output(f"{op}_xy", fn(x, rhs))
        g.output(f"{op}_x_scalar", fn(x, 3))
        if op in ("sub", "lt"):
            g.output(f"{op}_scalar_x", fn(-7, x))
    g.output("where_xy", gc.where(x > y, x, y))
    g.output("where_scalar", gc.where(x < 0, 5, x))
    rng = _rng("binary" + dtype)
    info = np.iinfo(dtype)
    xs = _int_extremes(dtype, (4, 6), rng)
    xs[1, :3] = [info.max // 2 + 7, 123457, -99991]  # products and powers that wrap
    ys = np.array([1, info.max, info.min, -1, 2, 0], dtype)
    es = rng.integers(0, 6, size=(4, 6)).astype(dtype)
    es[1, :3] = [3, 5, 7]
    return g, {"x": xs, "y": ys, "e": es}, 0, 0


for _dt in INTS:
    case(f"binary_{_dt}")(lambda _dt=_dt: _binary_int(_dt))


@case("bool_ops")
def _bool_ops():
    g = gc.Graph("bool_ops")
    a = g.input("a", (2, 4), "bool")
    b = g.input("b", (4,), "bool")
    for op in COMPARES:
        g.output(op, getattr(gc, op)(a, b))
    g.output("where", gc.where(a, b, gc.eq(a, False)))
    g.output("stop", gc.stop_gradient(a))
    g.output("cond_int", gc.where(a, g.const(np.array([1, 2, 3, 4], "int32")), -1))
    args = {"a": np.array([[True, True, False, False], [True, False, True, False]]),
            "b": np.array([True, False, True, False])}
    return g, args, 0, 0


@case("cast")
def _casts():
    """Every dtype to every other: int64 -> int32 wraps, float -> int truncates toward zero,
    float64 -> float32 rounds and overflows to inf, anything -> bool is ``!= 0``."""
    g = gc.Graph("casts")
    dtypes = ("bool",) + INTS + FLOATS
    ins = {d: g.input(f"x_{d}", (8,), d) for d in dtypes}
    wild = g.input("wild", (8,), "float64")  # nonfinite / out-of-range floats: float targets only
    for src, dst in itertools.product(dtypes, dtypes):
        if src != dst:
            g.output(f"{src}_to_{dst}", gc.cast(ins[src], dst))
    for dst in ("float32", "bool"):
        g.output(f"wild_to_{dst}", gc.cast(wild, dst))
    args = {
        "x_bool": np.array([True, False, True, True, False, False, True, False]),
        "x_int32": np.array([0, 1, -1, 2**31 - 1, -2**31, 16777217, 7, -9], "int32"),
        "x_int64": np.array([0, 1, -1, 2**40 + 5, -2**31 - 1, 2**63 - 1, 2**53 + 1, -(2**62)], "int64"),
        "x_float32": np.array([0.0, -0.0, 1.5, -2.5, 3.99, -3.99, 1e9, 0.25], "float32"),
        "x_float64": np.array([0.0, -0.0, 1.5, -2.5, 3.99, -3.99, 1.5e9, 2.0**31 - 0.5], "float64"),
        "wild": np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-320, 16777217.0, 0.1], "float64"),
    }
    return g, args, 0, 0


# ---------------------------------------------------------------- reductions


def _reductions(dtype, shape=(3, 4, 5), axes_list=ALL_AXES, keepdims=(False, True), tag=""):
    g = gc.Graph(f"reduce_{dtype}{tag}")
    x = g.input("x", shape, dtype)
    for op in REDUCTIONS:
        for axes in axes_list:
            for kd in keepdims:
                name = f"{op}_{''.join(map(str, axes)) if axes is not None else 'all'}_{'keep' if kd else 'drop'}"
                g.output(name, getattr(gc, op)(x, axis=axes, keepdims=kd))
    rng = _rng(dtype + tag)
    if dtype in FLOATS:
        data = (rng.standard_normal(shape) * 10).astype(dtype)
        data[1, 2, 3] = np.nan  # NaN propagates through every reduction over its position
        data[0, 0, 0], data[0, 0, 1] = np.inf, -np.inf  # inf + -inf = nan; max/min pick them
        data[2, 3, :] = -np.inf  # a lane that is all -inf
        return g, {"x": data}, RTOL[dtype], None
    info = np.iinfo(dtype)
    data = rng.integers(info.min // 2, info.max // 2, size=shape, dtype=dtype)  # sums wrap around
    data[0, 0, 0], data[0, 1, 0] = info.min, info.max
    return g, {"x": data}, 0, 0


for _dt in FLOATS + INTS:
    case(f"reduce_{_dt}")(lambda _dt=_dt: _reductions(_dt))


@case("reduce_large_float32", fused_only=True)  # reductions are never fused anyway
def _large_reductions():
    """Big enough for the parallel loops (chunked full reductions, prange over kept axes):
    finite data, and a copy with one NaN (and infinities) that every reduction over it shows."""
    shape = (-(-LARGE // (32 * 33)), 32, 33)
    g = gc.Graph("reduce_large")
    x = g.input("x", shape)
    xn = g.input("xn", shape)
    for op in REDUCTIONS:
        for k, axes in enumerate([None, (0,), (1, 2)]):
            g.output(f"{op}_{k}", getattr(gc, op)(x, axis=axes))
            g.output(f"{op}_{k}_nan", getattr(gc, op)(xn, axis=axes))
    rng = _rng("large_reductions")
    data = (rng.standard_normal(shape) + 0.5).astype("float32")
    special = data.copy()
    special[shape[0] // 2 + 1, 5, 7] = np.nan  # lands in a middle chunk of a full reduction
    special[-1, 0, 0], special[-1, 0, 1] = np.inf, -np.inf
    return g, {"x": data, "xn": special}, RTOL["float32"], None


@case("elementwise_large_float64", fused_only=True)
def _large_elementwise():
    g = gc.Graph("elementwise_large")
    n = -(-LARGE // 260)
    x = g.input("x", (n, 260), "float64")
    y = g.input("y", (260,), "float64")
    g.output("a", gc.exp(gc.sin(x)) * y + 1)
    g.output("b", gc.where(x > 0, gc.sqrt(gc.abs(x)), x * x))
    g.output("c", gc.sum(gc.tanh(x) * y, axis=0))
    rng = _rng("large")
    xs = rng.standard_normal((n, 260))
    xs[7, 11] = np.nan
    return g, {"x": xs, "y": rng.standard_normal(260)}, RTOL["float64"], None


# ---------------------------------------------------------------- library and layout ops


def _layout(dtype):
    g = gc.Graph(f"layout_{dtype}")
    x = g.input("x", (3, 4), dtype)
    w = g.input("w", (4, 5), dtype)
    b3 = g.input("b3", (2, 3, 4), dtype)
    idx = g.input("idx", (3, 2), "int64")
    labels = g.input("labels", (3,), "int32")
    # matmul: 2-D, batched, broadcast batch (stride-0 operand), vector forms, on computed operands
    g.output("mm", x @ w)
    g.output("mm_batched", b3 @ gc.broadcast_to(w, (2, 4, 5)))
    g.output("mm_bcast", b3 @ w)
    g.output("mm_vec", x @ g.const(np.arange(4, dtype=dtype)))
    g.output("mm_fused_operands", gc.exp(x * 0.5) @ (w + 1))
    g.output("mm_t", x.T @ x)
    # argmax / argmin (ties and NaN included in the data)
    for op in ("argmax", "argmin"):
        fn = getattr(gc, op)
        g.output(f"{op}_0", fn(x, axis=0))
        g.output(f"{op}_1k", fn(x, axis=1, keepdims=True))
        g.output(f"{op}_all", fn(b3))
    # views
    g.output("transpose", gc.transpose(b3, (2, 0, 1)))
    g.output("transpose_used", gc.exp(x.T) + 1)  # a kernel reading a transposed view
    g.output("reshape", gc.reshape(b3, (4, 6)))
    g.output("reshape_used", gc.reshape(x * 2, (2, 6)) - 1)
    g.output("bcast", gc.broadcast_to(x[:, :1], (3, 4)))
    g.output("slice", x[1:, ::2])
    g.output("slice_neg", b3[:, ::-1, 3:0:-2])
    g.output("slice_used", x[::-1, 1:3] * x[:, :2])
    g.output("index", x[2, 1] + x[0])
    # concat, pad
    g.output("concat0", gc.concat([x, x * 2, gc.sqrt(gc.abs(x))], axis=0))
    g.output("concat1", gc.concat([x, w.T[:3]], axis=1))
    g.output("pad", gc.pad(x, [1, 0], [2, 1], [0, 2]))
    g.output("pad_used", gc.pad(gc.exp(x), [0, 1], [1, 0]) * 3)
    # gather/scatter/one_hot
    g.output("take", gc.take_along_axis(x, idx, axis=1))
    g.output("take_used", gc.take_along_axis(gc.tanh(x), gc.argmax(x, axis=1, keepdims=True), axis=1))
    g.output("scatter", gc.scatter_add(x[:, :2], idx, axis=1, size=4))
    g.output("rows", gc.take(x, idx[:, 0]))  # an embedding lookup: rows of x
    g.output("columns", gc.take(x, idx, axis=1))
    g.output("rows_used", gc.take(gc.exp(x), idx[:, 0], axis=1) * 2)
    g.output("rows_added", gc.index_add(b3[:, :2], idx[:2], axis=0, size=4))  # repeats accumulate
    g.output("one_hot", gc.one_hot(labels, 5, dtype=dtype))
    g.output("one_hot_used", gc.one_hot(labels, 4, dtype=dtype) * x)
    # sliding windows (a view), fold (its transpose) and a copy (what the layout pass puts under
    # a reshape that cannot be a view)
    win = gc.windows(b3, (2, 2), (1, 2), (1, 1))  # (2, 2, 2, 2, 2)
    g.output("windows", win)
    g.output("windows_used", gc.exp(gc.windows(x, (2,), (2,), (2,))) * 2)
    g.output("windows_reshaped", gc.reshape(win, (4, 8)))
    g.output("fold", gc.fold(win, (3, 4), (2, 2), (1, 2)))
    g.output("fold_overlapping", gc.fold(gc.windows(x * 2, (2, 3), (1, 1), (1, 1)), (3, 4), (2, 3)))
    g.output("copy", g.add_node("copy", [x.T], {}))
    g.output("random", gc.random_uniform(idx[1, 0], (3, 5), dtype, stream=2))  # the key read from data
    g.output("dropout", gc.dropout(x * 2, 0.5, 11))
    rng = _rng("layout" + dtype)
    xs = rng.standard_normal((3, 4)).astype(dtype)
    xs[0, 1] = xs[0, 3] = xs[0].max() + 1  # a tie for argmax
    xs[2, 2] = np.nan
    args = {"x": xs, "w": rng.standard_normal((4, 5)).astype(dtype),
            "b3": rng.standard_normal((2, 3, 4)).astype(dtype),
            "idx": np.array([[0, 3], [2, 2], [1, 0]], "int64"),
            "labels": np.array([0, 3, 1], "int32")}
    return g, args, RTOL[dtype], None


for _dt in FLOATS:
    case(f"layout_{_dt}")(lambda _dt=_dt: _layout(_dt))


def _layout_int(dtype):
    g = gc.Graph(f"layout_{dtype}")
    x = g.input("x", (3, 4), dtype)
    w = g.input("w", (4, 2), dtype)
    idx = g.input("idx", (3, 2), "int64")
    labels = g.input("labels", (3,), dtype)
    g.output("mm", x @ w)
    g.output("argmax", gc.argmax(x, axis=1))
    g.output("argmin", gc.argmin(x, axis=0, keepdims=True))
    g.output("transpose", x.T + 1)
    g.output("reshape", gc.reshape(x, (2, 6)))
    g.output("bcast", gc.broadcast_to(x[:1], (2, 3, 4)))
    g.output("slice", x[::-1, 1::2])
    g.output("concat", gc.concat([x, x * 3], axis=1))
    g.output("pad", gc.pad(x, [1, 1], [0, 1], [1, 0]))
    g.output("take", gc.take_along_axis(x, idx, axis=1))
    g.output("scatter", gc.scatter_add(x[:, :2], idx, axis=1, size=4))
    g.output("rows", gc.take(x, idx[:, 0]))
    g.output("rows_added", gc.index_add(x[:2], idx[:2, 0], axis=0, size=4))
    g.output("one_hot", gc.one_hot(labels, 4, dtype=dtype))
    g.output("windows", gc.windows(x, (2, 2), (1, 2)) * 3)
    g.output("fold", gc.fold(gc.windows(x, (2, 3)), (3, 4), (2, 3)))
    g.output("copy", g.add_node("copy", [x[:, ::2]], {}))
    info = np.iinfo(dtype)
    xs = np.array([[1, 5, 5, -2], [info.max, 3, info.max, 0], [7, -7, 0, info.min]], dtype)
    args = {"x": xs, "w": np.array([[1, 2], [3, 4], [-5, 6], [7, 1]], dtype),
            "idx": np.array([[0, 3], [2, 2], [1, 0]], "int64"), "labels": np.array([0, 3, 1], dtype)}
    return g, args, 0, 0


for _dt in INTS:
    case(f"layout_{_dt}")(lambda _dt=_dt: _layout_int(_dt))


def _composites(dtype):
    g = gc.Graph(f"composites_{dtype}")
    x = g.input("x", (4, 6), dtype)
    labels = g.input("labels", (4,), "int64")
    g.output("mean", gc.mean(x, axis=1))
    g.output("softmax", gc.softmax(x, axis=1))
    g.output("log_softmax", gc.log_softmax(x, axis=0))
    g.output("logsumexp", gc.logsumexp(x, axis=1, keepdims=True))
    g.output("gelu", gc.gelu(x))
    g.output("layer_norm", gc.layer_norm(x, axis=-1))
    g.output("gelu_exact", gc.gelu(x, approximate=False))
    g.output("svm", gc.svm_loss(x, labels))
    g.output("mse", gc.mse(x, x * 0.5))
    g.output("cross_entropy", gc.cross_entropy(x, labels))
    img = g.input("img", (2, 3, 7, 6), dtype)
    w = g.input("w", (4, 3, 3, 3), dtype)
    g.output("conv", gc.relu(gc.conv2d(img, w, padding=1) + 0.5))
    g.output("conv_strided", gc.conv2d(img, w[:2], stride=2, dilation=(1, 2)))
    g.output("conv_grouped", gc.conv2d(img, w[:3, :1], padding="same", groups=3))
    g.output("max_pool", gc.max_pool2d(img, 2))
    g.output("max_pool_padded", gc.max_pool2d(gc.tanh(img), 3, stride=2, padding=1))
    g.output("avg_pool", gc.avg_pool2d(img, (2, 3), stride=(1, 2), padding=(1, 1)))
    g.output("flatten", gc.flatten(gc.max_pool2d(img, 2)) * 2)
    rng = _rng("composites" + dtype)
    xs = (rng.standard_normal((4, 6)) * 3).astype(dtype)
    imgs = rng.integers(-3, 4, (2, 3, 7, 6)).astype(dtype)  # ties in every pooling window
    return g, {"x": xs, "labels": np.array([0, 5, 2, 3], "int64"), "img": imgs,
               "w": rng.standard_normal((4, 3, 3, 3)).astype(dtype)}, 1e-4 if dtype == "float32" else 1e-11, None


for _dt in FLOATS:
    case(f"composites_{_dt}", fused_only=True)(lambda _dt=_dt: _composites(_dt))


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("name, fuse", [pytest.param(name, fuse, id=f"{name}-{'fused' if fuse else 'unfused'}")
                                        for name in CASES for fuse in (True, False)
                                        if fuse or name not in FUSED_ONLY])
def test_compiled_matches_reference(name, fuse):
    graph, args, rtol, atol = CASES[name]()
    expected = gc.evaluate(graph, **args)
    fn = gc.compile(graph, fuse=fuse)
    got = fn(**args)
    assert_outputs_close(got, expected, rtol=rtol, atol=atol)


def _dtype_key(v) -> str:
    return v.dtype if v.op in ("one_hot", "where", "random_uniform") else v.inputs[0].dtype


def test_every_op_has_a_compiled_row():
    """Every non-source op appears, after simplification, in a case above: in float32 and
    float64, and in int32 and int64 where the op takes integers."""
    seen = {}
    for name, build in CASES.items():
        graph = build()[0]
        for v in gc.simplify(graph).nodes:
            if v.op not in SOURCES:
                seen.setdefault(v.op, set()).add(_dtype_key(v))
    ops = [op for op in gc.OPS if op not in SOURCES]
    missing_float = {op: sorted(set(FLOATS) - seen.get(op, set())) for op in ops}
    missing_float = {op: m for op, m in missing_float.items() if m}
    assert not missing_float, f"ops without a compiled float row: {missing_float}"
    missing_int = {op: sorted(set(INTS) - seen.get(op, set())) for op in sorted(INT_OPS)}
    missing_int = {op: m for op, m in missing_int.items() if m}
    assert not missing_int, f"ops without a compiled integer row: {missing_int}"
    assert "bool" in seen["where"] and "bool" in seen["eq"] and "bool" in seen["cast"]


def test_reduction_rows_cover_every_axis_combination():
    """sum/max/min over each of the 8 axis subsets of a rank-3 input, keepdims both ways."""
    graph = CASES["reduce_float64"]()[0]
    rows = {(v.op, v.attrs["axes"], v.attrs["keepdims"]) for v in graph.nodes if v.op in REDUCTIONS}
    assert rows == {(op, axes, kd) for op in REDUCTIONS for axes in ALL_AXES for kd in (False, True)}
