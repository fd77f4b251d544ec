"""Every differentiable op's VJP and JVP rules, first and second order, against central finite
differences in float64 (``gradcheck.py``), on hypothesis-drawn shapes (with broadcasting
through the builder) and random points away from kinks; and the non-differentiable ops pass
exactly zero.

``CASES`` maps each op name to a hypothesis strategy of (build, args, eps) checks for it; the
coverage tests below make a new op without a row here fail.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
from gradcheck import Problem, examples, check_grad, check_jvp, check_second_order, check_vjp

MAX_EXAMPLES = examples(25)

# ---------------------------------------------------------------- drawing shapes and values

seeds = st.integers(0, 2**32 - 1)


def shapes(min_dims=0, max_dims=3, max_side=3):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def broadcastable(n, max_dims=3):
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=max_dims, min_side=1,
                                             max_side=3).map(lambda s: s.input_shapes)


# value domains: rng, shape -> float64 array
def real(rng, shape):
    return rng.uniform(-2, 2, shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2, shape)


def away_from_zero(rng, shape, low=0.1):
    return rng.uniform(low, 2, shape) * rng.choice([-1.0, 1.0], shape)


def nonzero(rng, shape):
    return away_from_zero(rng, shape, 0.5)


def tie_free_pair(rng, shape_a, shape_b):
    """a on the grid 0.5 Z + 0.25, b on 0.5 Z, each jittered by < 0.05: |a - b| >= 0.15."""
    a = rng.integers(-4, 4, shape_a) * 0.5 + 0.25 + rng.uniform(-0.05, 0.05, shape_a)
    b = rng.integers(-4, 4, shape_b) * 0.5 + rng.uniform(-0.05, 0.05, shape_b)
    return a, b


def distinct(rng, shape):
    """Values at least ~0.2 apart: no ties anywhere (for max/min reductions)."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.3 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


class Case:
    def __init__(self, build, args, wrt=None, eps=None):
        self.build, self.args, self.wrt, self.eps = build, args, wrt, eps

    def __repr__(self):
        return f"Case(args={ {k: (v.dtype.name, v.shape) for k, v in self.args.items()} })"


# ---------------------------------------------------------------- elementwise

UNARY_DOMAINS = {
    "neg": real, "exp": real, "log": positive, "sqrt": positive, "rsqrt": positive,
    "abs": away_from_zero, "tanh": real, "sigmoid": lambda r, s: r.uniform(-4, 4, s),
    "relu": away_from_zero, "square": real, "reciprocal": nonzero, "sin": real, "cos": real,
    "log1p": lambda r, s: r.uniform(-0.5, 2, s), "expm1": real,
    "softplus": lambda r, s: r.uniform(-4, 4, s), "erf": real,
}


def unary_case(op):
    @st.composite
    def case(draw):
        rng = np.random.default_rng(draw(seeds))
        x = UNARY_DOMAINS[op](rng, draw(shapes()))
        if draw(st.booleans()):  # through the method/operator forms where they exist
            build = {"neg": lambda g, x: -x, "abs": lambda g, x: abs(x)}.get(op, lambda g, x: getattr(gc, op)(x))
        else:
            build = lambda g, x: getattr(gc, op)(x)  # noqa: E731
        return Case(build, {"x": x})

    return case()


BINARY_DOMAINS = {
    "add": (real, real), "sub": (real, real), "mul": (real, real), "div": (real, nonzero),
    "pow": (positive, real), "maximum": None, "minimum": None,
}
OPERATORS = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__", "pow": "__pow__"}


def binary_case(op):
    @st.composite
    def case(draw):
        rng = np.random.default_rng(draw(seeds))
        sa, sb = draw(broadcastable(2))
        if BINARY_DOMAINS[op] is None:
            a, b = tie_free_pair(rng, sa, sb)
        else:
            da, db = BINARY_DOMAINS[op]
            a, b = da(rng, sa), db(rng, sb)
        # b is sometimes a constant (no tangent, no cotangent); the operator form sometimes
        const_b = draw(st.booleans()) and draw(st.booleans())
        operator = op in OPERATORS and draw(st.booleans())

        def build(g, a, b=None, b_const=b):
            bv = g.const(b_const) if b is None else b
            return getattr(a, OPERATORS[op])(bv) if operator else getattr(gc, op)(a, bv)

        return Case(build, {"a": a} if const_b else {"a": a, "b": b})

    return case()


@st.composite
def where_case(draw):
    rng = np.random.default_rng(draw(seeds))
    sc, sa, sb = draw(broadcastable(3))
    cond = rng.random(sc) < 0.5
    a, b = real(rng, sa), real(rng, sb)
    return Case(lambda g, c, a, b: gc.where(c, a, b), {"c": cond, "a": a, "b": b})


@st.composite
def cast_case(draw):
    """float64 -> float32 -> float64 and float32 -> float64. Values and steps are multiples of
    2**-8 and the projection weights multiples of 1/8, so every value is exact in float32 and the
    finite differences are exact too."""
    rng = np.random.default_rng(draw(seeds))
    s64, s32 = draw(shapes()), draw(shapes())
    x64 = rng.integers(-512, 512, s64) / 256.0
    x32 = (rng.integers(-512, 512, s32) / 256.0).astype(np.float32)

    def build(g, x64, x32):
        return {"round_trip": gc.cast(gc.cast(x64, "float32"), "float64"), "up": gc.cast(x32, "float64")}

    return Case(build, {"x64": x64, "x32": x32}, eps=2.0 ** -8)


# ---------------------------------------------------------------- reductions


def axes_and_keepdims(draw, rank):
    if draw(st.booleans()):
        axis = None
    else:
        axis = tuple(draw(st.lists(st.integers(-rank, rank - 1), unique_by=lambda a: a % rank, max_size=rank))) \
            if rank else ()
        if len(axis) == 1 and draw(st.booleans()):
            axis = axis[0]
    return axis, draw(st.booleans())


def reduction_case(op):
    @st.composite
    def case(draw):
        rng = np.random.default_rng(draw(seeds))
        shape = draw(shapes())
        x = real(rng, shape) if op == "sum" else distinct(rng, shape)
        axis, keepdims = axes_and_keepdims(draw, len(shape))
        return Case(lambda g, x: getattr(gc, op)(x, axis=axis, keepdims=keepdims), {"x": x})

    return case()


# ---------------------------------------------------------------- matmul and layout

MATMUL_FORMS = {
    "vv": lambda b, m, k, n: ((k,), (k,)),
    "mv": lambda b, m, k, n: ((m, k), (k,)),
    "vm": lambda b, m, k, n: ((k,), (k, n)),
    "mm": lambda b, m, k, n: ((m, k), (k, n)),
    "bmm": lambda b, m, k, n: ((b, m, k), (b, k, n)),
    "bm": lambda b, m, k, n: ((b, m, k), (k, n)),
    "mb": lambda b, m, k, n: ((m, k), (b, k, n)),
    "1b": lambda b, m, k, n: ((1, m, k), (b, k, n)),
    "b1": lambda b, m, k, n: ((b, 1, m, k), (2, k, n)),
    "bv": lambda b, m, k, n: ((b, m, k), (k,)),
}


@st.composite
def matmul_case(draw):
    rng = np.random.default_rng(draw(seeds))
    form = draw(st.sampled_from(sorted(MATMUL_FORMS)))
    sa, sb = MATMUL_FORMS[form](*(draw(st.integers(1, 3)) for _ in range(4)))
    use_operator = draw(st.booleans())
    return Case(lambda g, a, b: a @ b if use_operator else gc.matmul(a, b), {"a": real(rng, sa), "b": real(rng, sb)})


@st.composite
def transpose_case(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=2, max_dims=4))
    perm = draw(st.permutations(range(len(shape))))
    if perm == sorted(perm):
        perm = perm[::-1]
    return Case(lambda g, x: gc.transpose(x, perm), {"x": real(rng, shape)})


@st.composite
def reshape_case(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=0, max_dims=3, max_side=4))
    dims = draw(st.permutations([d for d in shape if d > 1]))
    # group the (shuffled) dims into a new shape, with some unit axes sprinkled in
    target = []
    for d in dims:
        if target and draw(st.booleans()):
            target[-1] *= d
        else:
            target.append(d)
    for _ in range(draw(st.integers(0, 2))):
        target.insert(draw(st.integers(0, len(target))), 1)
    target = tuple(target)
    if target == shape:
        target = target + (1,)
    if target and draw(st.booleans()):  # let the builder infer one dimension
        i = draw(st.integers(0, len(target) - 1))
        target = target[:i] + (-1,) + target[i + 1:]
    return Case(lambda g, x: gc.reshape(x, target), {"x": real(rng, shape)})


@st.composite
def broadcast_case(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = tuple(draw(st.lists(st.integers(1, 3).map(lambda d: 1 if d == 1 else d), max_size=3)))
    target = tuple(draw(st.integers(1, 3)) if d == 1 else d for d in shape)
    target = tuple(draw(st.lists(st.integers(1, 3), max_size=2))) + target
    if target == shape:
        target = (2,) + target
    return Case(lambda g, x: gc.broadcast_to(x, target), {"x": real(rng, shape)})


@st.composite
def concat_case(draw):
    rng = np.random.default_rng(draw(seeds))
    base = draw(shapes(min_dims=1, max_dims=3))
    axis = draw(st.integers(-len(base), len(base) - 1))
    k = draw(st.integers(1, 3))
    args = {}
    for i in range(k):
        s = list(base)
        s[axis] = draw(st.integers(1, 3))
        args[f"x{i}"] = real(rng, tuple(s))
    const_last = k > 1 and draw(st.booleans())
    if const_last:
        c = args.pop(f"x{k - 1}")

    def build(g, **xs):
        vals = [xs[f"x{i}"] for i in range(len(xs))] + ([g.const(c)] if const_last else [])
        return gc.concat(vals, axis=axis)

    return Case(build, args)


def _slices(draw, shape):
    items = []
    for dim in shape:
        kind = draw(st.integers(0, 4))
        if kind == 0:
            items.append(draw(st.integers(-dim, dim - 1)))  # an int drops the axis
        else:
            items.append(draw(st.slices(dim)))
    return items


@st.composite
def slice_case(draw):
    """Basic indexing: ints, slices with any (also negative) steps, possibly empty results."""
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    items = _slices(draw, shape)
    full = all((i.indices(d) if isinstance(i, slice) else (i % d, i % d + 1, 1)) == (0, d, 1)
               for i, d in zip(items, shape))
    if full:
        items[0] = slice(None, None, -1)
    index = tuple(items)
    if draw(st.booleans()):  # also a raw slice node with a negative stop (range semantics)
        d = shape[0]
        raw = dict(starts=[d - 1] + [0] * (len(shape) - 1), stops=[-1] + list(shape[1:]),
                   steps=[-draw(st.integers(1, 2))] + [1] * (len(shape) - 1))
        return Case(lambda g, x: {"a": x[index], "b": g.add_node("slice", [x], raw)}, {"x": real(rng, shape)})
    return Case(lambda g, x: x[index], {"x": real(rng, shape)})


@st.composite
def pad_case(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=0, max_dims=3))
    pads = [st.lists(st.integers(0, 2), min_size=len(shape), max_size=len(shape)) for _ in range(3)]
    low, high, interior = (tuple(draw(p)) for p in pads)
    return Case(lambda g, x: gc.pad(x, low, high, interior), {"x": real(rng, shape)})


@st.composite
def take_case(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=1, max_dims=3))
    axis = draw(st.integers(0, len(shape) - 1))
    # index dims: any length along axis; elsewhere equal, or one of the two is 1 and the builder
    # broadcasts it (a broadcast x sums its gradient back)
    xshape, ishape = [], []
    for a, d in enumerate(shape):
        if a == axis:
            xshape.append(d), ishape.append(draw(st.integers(1, 4)))
        else:
            xd, idd = draw(st.sampled_from([(d, d), (1, d), (d, 1)]))
            xshape.append(xd), ishape.append(idd)
    shape = tuple(xshape)
    idx = rng.integers(0, shape[axis], tuple(ishape)).astype(draw(st.sampled_from(["int32", "int64"])))
    neg_axis = draw(st.booleans())
    return Case(lambda g, x, i: gc.take_along_axis(x, i, axis - len(shape) if neg_axis else axis),
                {"x": real(rng, shape), "i": idx})


@st.composite
def scatter_case(draw):
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=1, max_dims=3))
    axis = draw(st.integers(0, len(shape) - 1))
    size = draw(st.integers(1, 4))
    idx = rng.integers(0, size, shape).astype("int64")  # repeats accumulate
    return Case(lambda g, u, i: gc.scatter_add(u, i, axis, size), {"u": real(rng, shape), "i": idx})


@st.composite
def gather_case(draw, op):
    """take (an embedding lookup, on any axis, indices of any rank, repeats) or its transpose index_add."""
    rng = np.random.default_rng(draw(seeds))
    shape = draw(shapes(min_dims=1, max_dims=3))
    axis = draw(st.integers(0, len(shape) - 1))
    idx = rng.integers(0, shape[axis], draw(shapes(min_dims=0, max_dims=2))).astype("int64")
    if op == "take":
        return Case(lambda g, x, i: gc.take(x, i, axis), {"x": real(rng, shape), "i": idx})
    ushape = shape[:axis] + idx.shape + shape[axis + 1:]
    return Case(lambda g, u, i: gc.index_add(u, i, axis, shape[axis]), {"u": real(rng, ushape), "i": idx})


@st.composite
def window_case(draw, op):
    """windows (sliding windows as a view) over the last one or two axes, or its transpose fold,
    with strides and dilations that make windows overlap, skip elements, or both."""
    rng = np.random.default_rng(draw(seeds))
    k = draw(st.integers(1, 2))
    lead = draw(shapes(min_dims=0, max_dims=1))
    window = tuple(draw(st.integers(1, 3)) for _ in range(k))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(k))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(k))
    size = tuple(d * (w - 1) + 1 + draw(st.integers(0, 2)) for w, d in zip(window, dilation))
    if op == "windows":
        return Case(lambda g, x: gc.windows(x, window, strides, dilation), {"x": real(rng, lead + size)})
    counts = tuple((n - d * (w - 1) - 1) // s + 1 for n, w, s, d in zip(size, window, strides, dilation))
    return Case(lambda g, x: gc.fold(x, size, window, strides, dilation), {"x": real(rng, lead + window + counts)})


@st.composite
def copy_case(draw):
    """copy (what the layout pass puts under a reshape of a strided view) of a transposed value."""
    rng = np.random.default_rng(draw(seeds))
    return Case(lambda g, x: g.add_node("copy", [gc.transpose(gc.tanh(x))], {}), {"x": real(rng, draw(shapes()))})


@st.composite
def checkpoint_case(draw):
    """An identity for values and gradients, however it is marked."""
    rng = np.random.default_rng(draw(seeds))
    save = draw(st.booleans())
    return Case(lambda g, x: gc.checkpoint(gc.tanh(x), save=save) * x, {"x": real(rng, draw(shapes()))})


CASES = {
    **{op: unary_case(op) for op in UNARY_DOMAINS},
    "checkpoint": checkpoint_case(),
    **{op: binary_case(op) for op in BINARY_DOMAINS},
    "where": where_case(),
    "cast": cast_case(),
    "sum": reduction_case("sum"),
    "max": reduction_case("max"),
    "min": reduction_case("min"),
    "matmul": matmul_case(),
    "transpose": transpose_case(),
    "reshape": reshape_case(),
    "broadcast_to": broadcast_case(),
    "concat": concat_case(),
    "slice": slice_case(),
    "pad": pad_case(),
    "take_along_axis": take_case(),
    "scatter_add": scatter_case(),
    "take": gather_case("take"),
    "index_add": gather_case("index_add"),
    "windows": window_case("windows"),
    "fold": window_case("fold"),
    "copy": copy_case(),
}

DIFFERENTIABLE = {n for n, o in gc.OPS.items() if o.differentiable and o.kind != "source"}
NON_DIFFERENTIABLE = {n for n, o in gc.OPS.items() if not o.differentiable and o.kind != "source"}


def test_every_differentiable_op_is_gradient_checked():
    assert set(CASES) == DIFFERENTIABLE, (
        f"ops without a gradient check: {sorted(DIFFERENTIABLE - set(CASES))}; "
        f"checked but not differentiable: {sorted(set(CASES) - DIFFERENTIABLE)}")


def _problem(op, case):
    kw = {} if case.eps is None else {"eps": case.eps}
    return Problem(case.build, case.args, case.wrt, op=op, name=f"check_{op}", **kw)


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=MAX_EXAMPLES)
@given(data=st.data())
def test_reverse_mode_matches_finite_differences(op, data):
    p = _problem(op, data.draw(CASES[op], label="case"))
    check_grad(p)
    check_vjp(p)


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=MAX_EXAMPLES)
@given(data=st.data())
def test_forward_mode_matches_finite_differences(op, data):
    check_jvp(_problem(op, data.draw(CASES[op], label="case")))


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=MAX_EXAMPLES)
@given(data=st.data())
def test_second_order_matches_finite_differences(op, data):
    check_second_order(_problem(op, data.draw(CASES[op], label="case")))


# ---------------------------------------------------------------- non-differentiable ops

def _f64(v):
    return gc.cast(v, "float64")


NONDIFF_BUILDS = {
    **{op: (lambda op: lambda g, x, y: _f64(getattr(gc, op)(x, y)) * 3.0)(op)
       for op in ("lt", "le", "gt", "ge", "eq", "ne")},
    "sign": lambda g, x, y: gc.sign(x) * gc.sign(y),
    "argmax": lambda g, x, y: _f64(gc.argmax(x, axis=-1)) + _f64(gc.argmax(y)),
    "argmin": lambda g, x, y: _f64(gc.argmin(x, axis=0, keepdims=True)) + _f64(gc.argmin(y)),
    "one_hot": lambda g, x, y: gc.one_hot(gc.argmax(x, axis=-1), 5, "float64") * 2.0,
    "stop_gradient": lambda g, x, y: gc.stop_gradient(x) * gc.stop_gradient(gc.exp(y)),
    "random_uniform": lambda g, x, y: gc.random_uniform(gc.argmax(x), x.shape, "float64") * 3.0 + 0 * gc.sign(y),
}


def test_every_non_differentiable_op_is_checked():
    assert set(NONDIFF_BUILDS) == NON_DIFFERENTIABLE


@pytest.mark.parametrize("op", sorted(NONDIFF_BUILDS))
@settings(max_examples=examples(10))
@given(seed=seeds, shape=shapes(min_dims=1))
def test_non_differentiable_ops_pass_exactly_zero(op, seed, shape):
    rng = np.random.default_rng(seed)
    x, y = real(rng, shape), real(rng, shape)
    x.flat[0] = y.flat[0]  # a tie on the way, for eq/le/ge
    build = NONDIFF_BUILDS[op]
    p = Problem(build, {"x": x, "y": y}, op=op, name=f"zero_{op}")
    zeros = {"x": np.zeros(shape), "y": np.zeros(shape)}

    dg = gc.grad(p.forward(with_loss=True), of="loss", wrt=["x", "y"])
    out = gc.evaluate(dg, x=x, y=y)
    for w in "xy":
        np.testing.assert_array_equal(out[f"grad_{w}"], zeros[w], strict=True)

    vg = gc.vjp(p.graph, wrt=["x", "y"])
    out = gc.evaluate(vg, x=x, y=y, **{f"cotangent_{k}": p.W[k] for k in p.graph.outputs})
    for w in "xy":
        np.testing.assert_array_equal(out[f"grad_{w}"], zeros[w], strict=True)

    jg = gc.jvp(p.graph, wrt=["x", "y"])
    out = gc.evaluate(jg, x=x, y=y, tangent_x=np.ones(shape), tangent_y=np.ones(shape))
    for k, v in p.graph.outputs.items():
        np.testing.assert_array_equal(out[f"tangent_{k}"], np.zeros(v.shape), strict=True)
