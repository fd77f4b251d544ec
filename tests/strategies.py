"""Hypothesis strategies for random, valid graphc graphs, and the data to run them on.

    from strategies import graphs, arguments, random_arguments, assert_same_outputs

    @given(st.data())
    def test_something(data):
        g = data.draw(graphs())                  # a random valid gc.Graph
        args = data.draw(arguments(g))           # {name: ndarray} for every input and param
        out = gc.evaluate(g, **args)

``graphs()`` builds every graph through the public builder API only (``g.input``, ``g.param``,
``g.const``, the ``gc.*`` op functions and the ``Value`` operators), so each graph is valid by
construction and exercises the builder's broadcasting, promotion and indexing too. A graph has:

* sources: inputs of random float32/float64/int32/int64 dtype and shape (rank 0..``max_rank``),
  params (always float: they are what ``grad`` differentiates), and constants, scalars or small
  arrays, whose floats include nan, inf, -inf, -0.0, subnormals and the extremes of the dtype;
* a random sequence of ``min_ops..max_ops`` build steps, each one op family (``OP_FAMILIES``):
  unary ops, binary ops with broadcasting and Python-scalar operands, compares, where, cast,
  reductions with random axes/keepdims, argmax/argmin, matmul (1-D, 2-D, batched), transpose,
  reshape, broadcast_to, concat, basic indexing/slicing, one_hot, take_along_axis, composites;
* several named outputs (one value may be output under two names).

Steps may add fresh sources when an op needs an operand of a shape the graph does not have yet,
and helper nodes of other families where the op needs them (``where`` makes a compare for its
condition, ``div``/``pow`` cast integer operands to float, the builder adds ``broadcast_to`` and
``cast`` nodes), so ``ops=`` chooses what is exercised rather than fencing everything else out.

Run-time safety, which compiled-vs-reference tests rely on:

* every index that reaches ``one_hot`` or ``take_along_axis`` is provably in range: it is an
  integer input (``arguments``/``random_arguments`` draw those in ``[0, INT_INPUT_HIGH)``), an
  in-range integer constant, an argmax/argmin result, or a layout op of such values;
* ``pow`` and ``div`` only ever see float operands (no integer power/division errors);
* integer arithmetic may wrap around (numpy semantics); float ops may give nan/inf.
* float -> int casts of nan/inf/out-of-range values are implementation defined in numpy and
  C alike; pass ``float_to_int_casts=False`` where two implementations must agree bit for bit.
  Likewise ``nonfinite_consts=False`` keeps nan/inf out of constants (they still arise from ops
  like log of a negative number unless ``ops`` leaves such families out).
"""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
ALL_DTYPES = ("bool",) + INT_DTYPES + FLOAT_DTYPES
INT_INPUT_HIGH = 4  # integer inputs are drawn in [0, INT_INPUT_HIGH): usable as labels/indices

OP_FAMILIES = (
    "unary", "binary", "compare", "where", "cast", "reduce", "argreduce", "matmul", "transpose",
    "reshape", "broadcast", "concat", "slice", "one_hot", "take_along_axis", "composite",
)

FLOAT_UNARY = ("neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign", "tanh", "sigmoid", "relu", "square",
               "reciprocal", "sin", "cos", "log1p", "expm1", "softplus", "erf", "stop_gradient")
INT_UNARY = ("neg", "abs", "sign", "relu", "square", "stop_gradient")
NUMERIC_BINARY = ("add", "sub", "mul", "maximum", "minimum")
FLOAT_BINARY = ("div", "pow")
COMPARES = ("lt", "le", "gt", "ge", "eq", "ne")
COMPOSITES = ("softmax", "log_softmax", "logsumexp", "gelu")

# names that could confuse a parser or an exporter: keywords of the text form, of DOT, and
# words that look like numbers or dtypes
TRICKY_NAMES = ("graph", "output", "input", "param", "const", "nan", "inf", "true", "false", "f32",
                "i64", "bool", "e5", "_", "node", "edge", "digraph", "subgraph", "strict", "x")


def special_floats(dtype) -> list:
    """Values of a float dtype that printing and parsing must keep exactly."""
    fi = np.finfo(dtype)
    one = np.array(1.0, dtype)
    return [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1.0, -1.0, 0.1, 1 / 3,
            float(fi.max), float(-fi.max), float(fi.tiny), float(fi.smallest_subnormal),
            float(-fi.smallest_subnormal), float(fi.smallest_subnormal) * 3, float(fi.eps),
            float(np.nextafter(one, np.array(2.0, dtype))), float(np.nextafter(fi.tiny, 0 * one)),
            1e-45 if dtype == "float32" else 5e-324, 16777217.0, 2.0**60, -123456.789]


def _float_elements(dtype, nonfinite: bool):
    width = 32 if dtype == "float32" else 64
    specials = [x for x in special_floats(dtype) if nonfinite or math.isfinite(x)]
    return st.one_of(st.sampled_from(specials),
                     st.floats(width=width, allow_nan=nonfinite, allow_infinity=nonfinite),
                     st.floats(-4, 4, width=width))


def _int_elements(dtype):
    info = np.iinfo(dtype)
    return st.one_of(st.integers(-5, 5), st.sampled_from([int(info.min), int(info.max)]),
                     st.integers(int(info.min), int(info.max)))


def names():
    """Valid graphc names (identifiers), including ones that are keywords elsewhere."""
    return st.one_of(st.sampled_from(TRICKY_NAMES), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True))


def _broadcast_shape(*shapes):
    """The NumPy broadcast of ``shapes``, or None when they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


class _Builder:
    """The state of one graph being drawn: the graph, its value pool and what is known of it."""

    def __init__(self, draw, *, dtypes, ops, max_rank, max_dim, allow_empty, nonfinite_consts,
                 float_to_int_casts, name):
        self.draw = draw
        self.dtypes = tuple(dtypes)
        self.float_dtypes = tuple(d for d in self.dtypes if d in FLOAT_DTYPES) or ("float32",)
        self.ops = tuple(ops)
        self.max_rank, self.max_dim = max_rank, max_dim
        self.allow_empty = allow_empty
        self.nonfinite = nonfinite_consts
        self.float_to_int_casts = float_to_int_casts
        self.g = gc.Graph(name)
        self.pool: list[gc.Value] = []
        self.bounds: dict[gc.Value, int] = {}  # int values known to lie in [0, bound)
        self.used_names: set[str] = set()

    # ------------------------------------------------------------ small draws

    def pick(self, candidates):
        candidates = list(candidates)
        return self.draw(st.sampled_from(candidates)) if candidates else None

    def flag(self) -> bool:
        return self.draw(st.booleans())

    def dim(self) -> int:
        if self.allow_empty:
            return self.draw(st.one_of(st.integers(1, self.max_dim), st.just(0)))
        return self.draw(st.integers(1, self.max_dim))

    def shape(self, min_rank=0, max_rank=None) -> tuple[int, ...]:
        rank = self.draw(st.integers(min_rank, max(min_rank, self.max_rank if max_rank is None else max_rank)))
        return tuple(self.dim() for _ in range(rank))

    def name(self) -> str:
        base = self.draw(names())
        name, i = base, 0
        while name in self.used_names:
            i += 1
            name = f"{base}_{i}"
        self.used_names.add(name)
        return name

    def add(self, v, bound=None):
        if isinstance(v, gc.Value):
            self.pool.append(v)
            if bound is not None:
                self.bounds[v] = bound
        return v

    # ------------------------------------------------------------ sources

    def source(self, shape=None, dtype=None, kind=None):
        """A fresh input, param or constant of ``shape``/``dtype`` (random where None)."""
        shape = self.shape() if shape is None else tuple(shape)
        kind = kind or self.draw(st.sampled_from(("input", "param", "const")))
        if kind == "param" and (dtype is None or dtype in FLOAT_DTYPES):
            dtype = dtype or self.draw(st.sampled_from(self.float_dtypes))
            return self.add(self.g.param(self.name(), shape, dtype=dtype))
        dtype = dtype or self.draw(st.sampled_from(self.dtypes))
        if kind == "const":
            return self.add(self.const(shape, dtype))
        v = self.g.input(self.name(), shape, dtype=dtype)
        return self.add(v, INT_INPUT_HIGH if dtype in INT_DTYPES else None)

    def const(self, shape, dtype):
        if dtype in FLOAT_DTYPES:
            elements = _float_elements(dtype, self.nonfinite)
        elif dtype in INT_DTYPES:
            elements = _int_elements(dtype)
        else:
            elements = st.booleans()
        data = self.draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))
        return self.g.const(data)

    def index_const(self, shape, high: int, dtype=None):
        """An integer constant with every entry in [0, high): safe as indices or labels."""
        dtype = dtype or self.draw(st.sampled_from(INT_DTYPES))
        data = self.draw(hnp.arrays(np.dtype(dtype), shape, elements=st.integers(0, max(high - 1, 0))))
        return self.add(self.g.const(data), max(high, 1))

    def scalar(self, dtype):
        """A Python scalar operand (weakly typed: it adopts the other operand's dtype)."""
        if dtype in FLOAT_DTYPES or self.flag():
            pool = [x for x in special_floats("float32") if self.nonfinite or math.isfinite(x)]
            return self.draw(st.one_of(st.sampled_from(pool), st.floats(-3, 3, width=32)))
        return self.draw(st.integers(-3, 3))

    def compatible(self, shape, pred=lambda v: True, extra=()):
        """A pool value (or a fresh source) whose shape broadcasts with ``shape`` (and ``extra``)."""
        cands = [v for v in self.pool if pred(v) and _broadcast_shape(shape, v.shape, *extra) is not None]
        if cands and self.draw(st.integers(0, 3)):
            return self.pick(cands)
        return None

    def broadcastable_shape(self, shape):
        """A random shape that broadcasts against ``shape``: a suffix with some dims set to 1,
        perhaps with leading unit or new dims."""
        n = self.draw(st.integers(0, len(shape)))
        suffix = [1 if self.flag() else d for d in shape[len(shape) - n:]]
        lead = [] if len(shape) + 1 > self.max_rank + 1 or n < len(shape) else (
            [self.dim()] if self.draw(st.integers(0, 3)) == 0 else [])
        return tuple(lead + suffix)

    # ------------------------------------------------------------ op families

    def non_bool(self, pred=lambda v: True):
        return self.pick(v for v in self.pool if v.dtype != "bool" and pred(v))

    def unary(self):
        x = self.pick(self.pool)
        names_ = FLOAT_UNARY if x.dtype in FLOAT_DTYPES else INT_UNARY if x.dtype in INT_DTYPES else ("stop_gradient",)
        op = self.draw(st.sampled_from(names_))
        if op == "neg" and self.flag():
            return self.add(-x)
        if op == "abs" and self.flag():
            return self.add(abs(x))
        return self.add(getattr(gc, op)(x))

    def binary(self):
        a = self.non_bool()
        if a is None:
            return None
        op = self.draw(st.sampled_from(NUMERIC_BINARY + FLOAT_BINARY))
        form = self.draw(st.sampled_from(("value", "scalar", "scalar_left", "fresh")))
        if form == "value":
            b = self.compatible(a.shape, lambda v: v.dtype != "bool")
            form = "fresh" if b is None else form
        if form == "fresh":
            b = self.source(self.broadcastable_shape(a.shape), kind=self.draw(st.sampled_from(("input", "const"))))
            if b.dtype == "bool":
                b = self.add(gc.cast(b, "int32"), 2)
        if form in ("scalar", "scalar_left"):
            b = self.scalar(a.dtype)
        if op in FLOAT_BINARY:  # integer div/pow are not defined (or fail at run time): use floats
            if a.dtype not in FLOAT_DTYPES:
                a = self.add(gc.cast(a, self.draw(st.sampled_from(self.float_dtypes))))
            if isinstance(b, gc.Value) and b.dtype not in FLOAT_DTYPES:
                b = self.add(gc.cast(b, self.draw(st.sampled_from(self.float_dtypes))))
        a, b = (b, a) if form == "scalar_left" else (a, b)
        operator_form = self.flag()
        sym = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__", "pow": "__pow__"}
        if operator_form and op in sym:
            if isinstance(a, gc.Value):
                return self.add(getattr(a, sym[op])(b))
            return self.add(getattr(b, sym[op].replace("__", "__r", 1))(a))
        return self.add(getattr(gc, op)(a, b))

    def compare(self):
        a = self.pick(self.pool)
        if self.draw(st.integers(0, 2)) == 0:
            b = self.scalar(a.dtype) if a.dtype != "bool" else self.flag()
        else:
            b = self.compatible(a.shape)
            if b is None:
                b = self.source(self.broadcastable_shape(a.shape), kind="const")
        op = self.draw(st.sampled_from(COMPARES))
        if self.flag():
            ops = {"lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__", "eq": "__eq__", "ne": "__ne__"}
            if isinstance(b, gc.Value) or a.dtype != "bool":
                return self.add(getattr(a, ops[op])(b))
        return self.add(getattr(gc, op)(a, b))

    def where(self):
        a = self.pick(self.pool)
        cond = self.compatible(a.shape, lambda v: v.dtype == "bool")
        if cond is None:
            cond = self.compare()
            if _broadcast_shape(cond.shape, a.shape) is None:
                cond = self.add(gc.lt(a, self.scalar(a.dtype)) if a.dtype != "bool" else gc.eq(a, True))
        shape = _broadcast_shape(a.shape, cond.shape)
        if self.draw(st.integers(0, 3)) == 0 and a.dtype != "bool":
            b = self.scalar(a.dtype)
        else:
            b = self.compatible(shape)
            if b is None:
                b = self.source(self.broadcastable_shape(shape), kind="const")
        if self.flag():
            a, b = b, a
        return self.add(gc.where(cond, a, b))

    def cast(self):
        x = self.pick(self.pool)
        targets = [d for d in ALL_DTYPES if self.float_to_int_casts or x.dtype not in FLOAT_DTYPES
                   or d not in INT_DTYPES]
        dtype = self.draw(st.sampled_from(targets))
        bound = self.bounds.get(x) if dtype in INT_DTYPES else None
        if x.dtype == "bool" and dtype in INT_DTYPES:
            bound = 2
        v = x.astype(dtype) if self.flag() else gc.cast(x, self.draw(st.sampled_from((dtype, np.dtype(dtype)))))
        return self.add(v, bound)

    def axes(self, ndim, nonempty_shape=None):
        """A random ``axis`` argument: None, an int or a tuple, with negative forms mixed in."""
        if nonempty_shape is not None:
            allowed = [i for i, d in enumerate(nonempty_shape) if d > 0]
        else:
            allowed = list(range(ndim))
        form = self.draw(st.sampled_from(("none", "int", "tuple")))
        if form == "none" and len(allowed) == ndim:
            return None
        if not allowed:
            return ()
        chosen = self.draw(st.lists(st.sampled_from(allowed), unique=True, min_size=1 if form == "int" else 0))
        chosen = [a - ndim if self.flag() else a for a in chosen]
        if form == "int" and chosen:
            return chosen[0]
        return tuple(chosen) if self.flag() else list(chosen)

    def reduce(self):
        x = self.non_bool()
        if x is None:
            return None
        op = self.draw(st.sampled_from(("sum", "max", "min", "mean")))
        keepdims = self.flag()
        axis = self.axes(x.ndim, x.shape if op in ("max", "min", "mean") else None)
        if self.flag():
            return self.add(getattr(x, op)(axis=axis, keepdims=keepdims))
        return self.add(getattr(gc, op)(x, axis=axis, keepdims=keepdims))

    def argreduce(self):
        x = self.non_bool(lambda v: v.size > 0)
        if x is None:
            return None
        op = self.draw(st.sampled_from(("argmax", "argmin")))
        keepdims = self.flag()
        if x.ndim == 0 or self.draw(st.integers(0, 3)) == 0:
            return self.add(getattr(gc, op)(x, keepdims=keepdims), x.size)
        axis = self.draw(st.integers(-x.ndim, x.ndim - 1))
        return self.add(getattr(gc, op)(x, axis=axis, keepdims=keepdims), x.shape[axis])

    def matmul(self):
        a = self.non_bool(lambda v: v.ndim >= 1)
        if a is None:
            return None
        k = a.shape[-1]
        a_batch = a.shape[:-2]

        def fits(b):
            if b.dtype == "bool" or b.ndim == 0:
                return False
            if b.ndim == 1:
                return b.shape[0] == k
            return b.shape[-2] == k and _broadcast_shape(a_batch, b.shape[:-2]) is not None

        b = self.pick(v for v in self.pool if fits(v)) if self.flag() else None
        if b is None:
            form = self.draw(st.sampled_from(("vector", "matrix", "batched")))
            if form == "vector":
                shape = (k,)
            else:
                batch = self.broadcastable_shape(a_batch)[-1:] if form == "batched" else ()
                shape = batch + (k, self.dim())
            kind = self.draw(st.sampled_from(("input", "param", "const")))
            b = self.source(shape, self.draw(st.sampled_from(self.dtypes)), kind)
        if self.flag():
            a, b = b, a
            if not (a.ndim >= 1 and b.ndim >= 1 and a.shape[-1] == (b.shape[-2] if b.ndim > 1 else b.shape[0])):
                a, b = b, a
        return self.add(a @ b if self.flag() else gc.matmul(a, b))

    def transpose(self):
        x = self.pick(self.pool)
        form = self.draw(st.sampled_from(("T", "default", "perm")))
        if form == "T":
            return self.add(x.T, self.bounds.get(x))
        if form == "default":
            return self.add(gc.transpose(x), self.bounds.get(x))
        perm = self.draw(st.permutations(range(x.ndim)))
        perm = [p - x.ndim if self.flag() else p for p in perm]
        # (x.transpose(*perm) would pass a lone int for a 1-D x; the tuple form is unambiguous)
        return self.add(gc.transpose(x, perm) if self.flag() else x.transpose(tuple(perm)), self.bounds.get(x))

    def reshape(self):
        x = self.pick(v for v in self.pool if v.ndim <= self.max_rank)
        if x is None:
            return None
        if x.size == 0:
            others = [self.draw(st.integers(1, 3)) for _ in range(self.draw(st.integers(0, 2)))]
            shape = list(self.draw(st.permutations([0] + others)))
        else:
            factors, n, p = [], x.size, 2
            while n > 1:
                while n % p == 0:
                    factors.append(p)
                    n //= p
                p += 1
            factors = self.draw(st.permutations(factors))
            groups = self.draw(st.integers(0, max(len(factors), 1)))
            shape = [1] * groups
            for f in factors:
                if groups:
                    shape[self.draw(st.integers(0, groups - 1))] *= f
                else:
                    shape.append(f)
            if x.size == 1 and self.flag():
                shape = []
            for _ in range(self.draw(st.integers(0, 1))):
                shape.insert(self.draw(st.integers(0, len(shape))), 1)
            if shape and self.flag():
                shape[self.draw(st.integers(0, len(shape) - 1))] = -1
        shape = tuple(shape)
        return self.add(x.reshape(shape) if self.flag() else gc.reshape(x, shape), self.bounds.get(x))

    def broadcast(self):
        x = self.pick(v for v in self.pool if v.ndim <= self.max_rank)
        target = [self.dim() if d == 1 and self.flag() else d for d in x.shape]
        if len(target) < self.max_rank and self.flag():
            target.insert(0, self.dim())
        return self.add(gc.broadcast_to(x, tuple(target)), self.bounds.get(x))

    def concat(self):
        x = self.pick(v for v in self.pool if v.ndim >= 1)
        if x is None:
            return None
        axis = self.draw(st.integers(0, x.ndim - 1))

        def fits(v):
            return v.ndim == x.ndim and all(a == b for i, (a, b) in enumerate(zip(v.shape, x.shape)) if i != axis)

        parts = [x]
        for _ in range(self.draw(st.integers(1, 3))):
            v = self.pick(v for v in self.pool if fits(v)) if self.flag() else None
            if v is None:
                shape = list(x.shape)
                shape[axis] = self.dim()
                v = self.source(shape, x.dtype if self.flag() else None, "const")
            parts.append(v)
        parts = self.draw(st.permutations(parts))
        bounds = [self.bounds.get(p) for p in parts]
        bound = None if None in bounds else max(bounds)
        return self.add(gc.concat(parts, axis=axis - x.ndim if self.flag() else axis), bound)

    def slice(self):
        x = self.pick(self.pool)
        items = []
        for d in x.shape:
            if d > 0 and self.draw(st.integers(0, 3)) == 0:
                items.append(self.draw(st.integers(-d, d - 1)))
            elif self.draw(st.integers(0, 3)) == 0:
                items.append(slice(None))
            else:
                items.append(self.draw(st.slices(d)))
        form = self.draw(st.integers(0, 5))
        if form == 0 and items:  # trailing items left out: those axes are taken whole
            items = items[: self.draw(st.integers(0, len(items)))]
        elif form == 1:  # ``...`` stands for a run of axes (perhaps none), taken whole
            at = self.draw(st.integers(0, len(items)))
            run = self.draw(st.integers(0, len(items) - at))
            items = items[:at] + [Ellipsis] + items[at + run:]
        if x.ndim < self.max_rank and self.draw(st.integers(0, 4)) == 0:
            items.insert(self.draw(st.integers(0, len(items))), None)
        index = items[0] if len(items) == 1 and self.flag() else tuple(items)
        return self.add(x[index], self.bounds.get(x))

    def one_hot(self):
        labels = self.pick(v for v in self.bounds if v.ndim < self.max_rank)
        if labels is None or self.draw(st.integers(0, 3)) == 0:
            high = self.draw(st.integers(1, self.max_dim))
            labels = self.index_const(self.shape(max_rank=self.max_rank - 1), high)
        depth = self.draw(st.integers(self.bounds[labels], self.bounds[labels] + 2))
        dtype = self.draw(st.sampled_from(ALL_DTYPES))
        v = gc.one_hot(labels, depth, dtype=dtype) if self.flag() else gc.one_hot(labels, depth)
        return self.add(v, 2 if v.dtype in INT_DTYPES else None)

    def take_along_axis(self):
        x = self.pick(v for v in self.pool if v.ndim >= 1 and any(d > 0 for d in v.shape))
        if x is None:
            return None
        axis = self.draw(st.sampled_from([i for i, d in enumerate(x.shape) if d > 0]))
        n = x.shape[axis]
        form = self.draw(st.sampled_from(("argmax", "pool", "const")))
        idx = None
        if form == "argmax" and x.dtype != "bool":
            idx = self.add(gc.argmax(x, axis=axis, keepdims=True) if self.flag()
                           else gc.argmin(x, axis=axis, keepdims=True), n)
        elif form == "pool":
            def fits(v):
                return v.ndim == x.ndim and self.bounds[v] <= n and all(
                    a == b or 1 in (a, b) for i, (a, b) in enumerate(zip(v.shape, x.shape)) if i != axis)

            idx = self.pick(v for v in self.bounds if fits(v))
        if idx is None:
            shape = [1 if self.flag() else d for d in x.shape]
            shape[axis] = self.draw(st.integers(0 if self.allow_empty else 1, 3))
            idx = self.index_const(tuple(shape), n)
        return self.add(gc.take_along_axis(x, idx, axis - x.ndim if self.flag() else axis), self.bounds.get(x))

    def composite(self):
        x = self.pick(v for v in self.pool if v.dtype in FLOAT_DTYPES and v.ndim >= 1 and v.size > 0)
        if x is None:
            return None
        op = self.draw(st.sampled_from(COMPOSITES))
        if op == "gelu":
            return self.add(gc.gelu(x))
        axis = self.draw(st.integers(-x.ndim, x.ndim - 1))
        if op == "logsumexp":
            return self.add(gc.logsumexp(x, axis=axis, keepdims=self.flag()))
        return self.add(getattr(gc, op)(x, axis=axis))


@st.composite
def graphs(draw, *, min_ops=1, max_ops=12, dtypes=FLOAT_DTYPES + INT_DTYPES, ops=OP_FAMILIES, max_rank=3,
           max_dim=4, allow_empty=False, nonfinite_consts=True, float_to_int_casts=True, min_outputs=1,
           max_outputs=4, name=None) -> gc.Graph:
    """A random valid ``gc.Graph`` built through the public builder API.

    dtypes: dtypes of inputs and constants (params take the float ones; bool values come from
        compares, casts and one_hot).
    ops: the op families to draw from (see ``OP_FAMILIES``).
    max_rank, max_dim: bounds of source shapes (derived values may have one more axis).
    allow_empty: let dimensions be 0 (empty arrays).
    nonfinite_consts: let constants hold nan/inf/-inf.
    float_to_int_casts: allow casts from a float to an int dtype (numpy-defined, not portable,
        for nan/inf/out-of-range values).
    name: the graph name; random (possibly a keyword such as "graph") when None.
    """
    b = _Builder(draw, dtypes=dtypes, ops=ops, max_rank=max_rank, max_dim=max_dim, allow_empty=allow_empty,
                 nonfinite_consts=nonfinite_consts, float_to_int_casts=float_to_int_casts,
                 name=name or draw(names()))
    for _ in range(draw(st.integers(1, 3))):
        b.source()
    for _ in range(draw(st.integers(min_ops, max_ops))):
        family = draw(st.sampled_from(b.ops))
        getattr(b, family)()
    candidates = [v for v in b.pool if v.op not in ("input", "param", "const")] or b.pool
    for _ in range(draw(st.integers(min_outputs, max_outputs))):
        # mostly late values (deep expressions); sometimes any value, even a source
        v = draw(st.sampled_from(candidates[-3:] if draw(st.booleans()) else b.pool))
        base = out_name = draw(names())
        i = 0
        while out_name in b.g.outputs:
            i += 1
            out_name = f"{base}_{i}"
        b.g.output(out_name, v)
    return b.g


# ---------------------------------------------------------------- data for a graph


def _argument_elements(dtype, finite: bool):
    if dtype in FLOAT_DTYPES:
        width = 32 if dtype == "float32" else 64
        if finite:
            return st.one_of(st.floats(-3, 3, width=width),
                             st.floats(width=width, allow_nan=False, allow_infinity=False))
        return st.one_of(st.floats(-3, 3, width=width), st.floats(width=width))
    if dtype in INT_DTYPES:
        return st.integers(0, INT_INPUT_HIGH - 1)
    return st.booleans()


@st.composite
def arguments(draw, graph: gc.Graph, *, finite=True) -> dict[str, np.ndarray]:
    """Random arrays for every input and param of ``graph``: ``{name: ndarray}`` of the
    declared shape and dtype. Integer arrays lie in ``[0, INT_INPUT_HIGH)`` (the graphs use
    integer inputs as labels and indices); floats are finite unless ``finite=False``."""
    return {name: draw(hnp.arrays(np.dtype(v.dtype), v.shape, elements=_argument_elements(v.dtype, finite)))
            for name, v in graph.arguments.items()}


def random_arguments(graph: gc.Graph, seed=0) -> dict[str, np.ndarray]:
    """Like ``arguments`` without hypothesis: standard-normal floats, ints in
    ``[0, INT_INPUT_HIGH)``, fair booleans, from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, v in graph.arguments.items():
        if v.dtype in FLOAT_DTYPES:
            out[name] = rng.standard_normal(v.shape).astype(v.dtype)
        elif v.dtype in INT_DTYPES:
            out[name] = rng.integers(0, INT_INPUT_HIGH, size=v.shape).astype(v.dtype)
        else:
            out[name] = rng.random(v.shape) < 0.5
    return out


# ---------------------------------------------------------------- comparing results


def assert_same_array(actual, expected, what="array") -> None:
    """Equal dtype, shape and values, bit for bit: NaN matches NaN (any payload) and the sign of
    zero counts (-0.0 is not 0.0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)
    if actual.dtype.kind == "f":
        nan = np.isnan(expected)
        np.testing.assert_array_equal(np.isnan(actual), nan, err_msg=f"{what}: nan positions")
        np.testing.assert_array_equal(np.signbit(actual[~nan]), np.signbit(expected[~nan]),
                                      err_msg=f"{what}: signs of zero")


def assert_same_outputs(actual: dict, expected: dict) -> None:
    """Two ``evaluate`` results hold the same output names and bit-identical arrays."""
    assert list(actual) == list(expected), f"output names {list(actual)} != {list(expected)}"
    for name in expected:
        assert_same_array(actual[name], expected[name], f"output {name!r}")
