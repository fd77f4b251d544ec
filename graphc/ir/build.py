"""The builder: NumPy-style op functions that make broadcasting and promotion explicit.

Each function takes values (or scalars and numpy arrays, which become constants), checks
shapes and dtypes, inserts ``cast`` and ``broadcast_to`` nodes where NumPy would promote or
broadcast implicitly, and appends the primitive node. Errors name the op and the shapes at
build time. Scalars, Python or numpy, are weakly typed: ``x * 2`` and ``x * np.float64(2)`` keep
``x``'s dtype.

Several functions shadow Python builtins (sum, max, min, abs, pow), as in NumPy; this module
reaches the builtins through ``builtins``.
"""

import builtins
import math
import operator

import numpy as np

from ..errors import GraphError, ShapeError
from . import dtypes as dt
from .graph import Graph, Value
from .ops import BINARY, COMPARE, UNARY
from .shapes import broadcast_shapes, check_shape, normalize_axes, normalize_axis

def _weak(x) -> bool:
    """Python scalars are weakly typed (numpy scalars are made Python ones by ``_scalar``)."""
    return type(x) in (bool, int, float)


def _scalar(x):
    """A numpy scalar (``np.float64(0.1)``, what ``np.mean`` returns) as the Python number it
    holds, so that ``w - lr * g`` keeps ``w``'s dtype whichever kind of number ``lr`` is;
    anything else unchanged. 0-d arrays stay arrays: they keep their dtype."""
    if isinstance(x, (np.bool_, np.integer, np.floating)):
        return {"b": bool, "i": int, "u": int, "f": float}[x.dtype.kind](x)
    return x


def _graph_of(op: str, xs) -> Graph:
    graphs = {id(x.graph): x.graph for x in xs if isinstance(x, Value)}
    if not graphs:
        raise GraphError(f"{op}: at least one operand must be a graph Value")
    if len(graphs) > 1:
        names = sorted(g.name for g in graphs.values())
        raise GraphError(f"{op}: operands come from different graphs {names}")
    return next(iter(graphs.values()))


def _operands(op: str, *xs, graph: Graph | None = None) -> list[Value]:
    """Operands as values of one dtype (promoted) and one shape (broadcast)."""
    g = graph or _graph_of(op, xs)
    xs = [_scalar(x) for x in xs]
    xs = [x if isinstance(x, Value) or _weak(x) else g.const(x) for x in xs]
    values = [x for x in xs if isinstance(x, Value)]
    dtype = dt.promote(*(v.dtype for v in values) if values else (dt.scalar_dtype(x) for x in xs))
    for x in xs:
        if _weak(x):
            dtype = dt.promote(dtype, dt.weak_dtype(x, dtype))
    xs = [cast(x, dtype) if isinstance(x, Value) else g.const(x, dtype) for x in xs]
    return _broadcast(op, xs)


def _broadcast(op: str, xs: list[Value]) -> list[Value]:
    shape = broadcast_shapes(op, *(x.shape for x in xs))
    return [broadcast_to(x, shape) for x in xs]


def _node(op: str, inputs, **attrs) -> Value:
    return inputs[0].graph.add_node(op, inputs, attrs)


def _value(op: str, x) -> Value:
    if not isinstance(x, Value):
        raise GraphError(f"{op}: expected a graph Value, got {type(x).__name__}")
    return x


# ---------------------------------------------------------------- elementwise


def _unary_fn(name: str):
    def fn(x):
        return _node(name, [_value(name, x)])

    fn.__name__ = name
    fn.__doc__ = UNARY[name][-1]
    return fn


def _binary_fn(name: str, doc: str):
    def fn(a, b):
        return _node(name, _operands(name, a, b))

    fn.__name__ = name
    fn.__doc__ = doc
    return fn


for _name in UNARY:
    globals()[_name] = _unary_fn(_name)
for _name, _row in BINARY.items():
    globals()[_name] = _binary_fn(_name, _row[-1])
for _name in COMPARE:
    globals()[_name] = _binary_fn(_name, f"elementwise comparison ({_name}) -> bool")


def where(cond, a, b) -> Value:
    """``a`` where ``cond`` is true, else ``b`` (cond must be bool)."""
    g = _graph_of("where", (cond, a, b))
    cond = cond if isinstance(cond, Value) else g.const(cond, "bool")
    a, b = _operands("where", a, b, graph=g)
    cond, a, b = _broadcast("where", [cond, a, b])
    return _node("where", [cond, a, b])


def checkpoint(x, save: bool = True) -> Value:
    """``x``, marked for rematerialization: ``save=True`` keeps it for the backward under every
    strategy; ``save=False`` never keeps it (it is recomputed where the backward needs it)."""
    return _node("checkpoint", [_value("checkpoint", x)], save=bool(save))


def cast(x, dtype) -> Value:
    """``x`` converted to ``dtype`` (no node when it already has it)."""
    dtype = dt.canonical(dtype)
    x = _value("cast", x)
    return x if x.dtype == dtype else _node("cast", [x], dtype=dtype)


# ---------------------------------------------------------------- reductions


def _reduction(op: str, x, axis, keepdims: bool) -> Value:
    x = _value(op, x)
    return _node(op, [x], axes=normalize_axes(axis, x.ndim, op), keepdims=bool(keepdims))


def sum(x, axis=None, keepdims=False) -> Value:
    """Sum over ``axis`` (None: all axes; an int or a tuple)."""
    return _reduction("sum", x, axis, keepdims)


def max(x, axis=None, keepdims=False) -> Value:
    """Max over ``axis``; ties share the gradient equally."""
    return _reduction("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False) -> Value:
    """Min over ``axis``; ties share the gradient equally."""
    return _reduction("min", x, axis, keepdims)


def mean(x, axis=None, keepdims=False) -> Value:
    """Mean over ``axis``: ``sum / n``. Integer input gives the default float."""
    x = _value("mean", x)
    axes = normalize_axes(axis, x.ndim, "mean")
    n = math.prod(x.shape[a] for a in axes)
    if n == 0:
        raise ShapeError(f"mean: cannot average over an empty axis of shape {x.shape}")
    return div(sum(x, axes, keepdims), float(n))


def _arg_reduction(op: str, x, axis, keepdims: bool) -> Value:
    x = _value(op, x)
    if axis is None:
        flat = _node(op, [reshape(x, (x.size,))], axis=0, keepdims=False)
        return reshape(flat, (1,) * x.ndim) if keepdims else flat
    return _node(op, [x], axis=normalize_axis(axis, x.ndim, op), keepdims=bool(keepdims))


def argmax(x, axis=None, keepdims=False) -> Value:
    """Index (int64) of the first maximum along ``axis`` (None: of the flattened array)."""
    return _arg_reduction("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False) -> Value:
    """Index (int64) of the first minimum along ``axis`` (None: of the flattened array)."""
    return _arg_reduction("argmin", x, axis, keepdims)


# ---------------------------------------------------------------- matmul and layout


def matmul(a, b) -> Value:
    """NumPy ``a @ b``: 1-D operands are vectors, batch dimensions broadcast."""
    g = _graph_of("matmul", (a, b))
    a, b = (x if isinstance(x, Value) else g.const(x) for x in (a, b))
    if not a.ndim or not b.ndim:
        raise ShapeError(f"matmul: operands must have rank >= 1, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit: contraction dimensions "
                         f"{a.shape[-1]} and {b.shape[-2 if b.ndim > 1 else 0]} differ")
    dtype = dt.promote(a.dtype, b.dtype)
    if a.ndim > 2 and b.ndim == 2:  # rows times one matrix: one 2-D matmul, and so is b's gradient
        rows = _node("matmul", [reshape(cast(a, dtype), (math.prod(a.shape[:-1]), a.shape[-1])), cast(b, dtype)])
        return reshape(rows, a.shape[:-1] + b.shape[-1:])
    a2 = reshape(cast(a, dtype), (1,) + a.shape) if a.ndim == 1 else cast(a, dtype)
    b2 = reshape(cast(b, dtype), b.shape + (1,)) if b.ndim == 1 else cast(b, dtype)
    try:
        batch = broadcast_shapes("matmul", a2.shape[:-2], b2.shape[:-2])
    except ShapeError:
        raise ShapeError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} "
                         f"cannot be broadcast together") from None
    out = _node("matmul", [broadcast_to(a2, batch + a2.shape[-2:]), broadcast_to(b2, batch + b2.shape[-2:])])
    shape = batch + (a.shape[-2:-1] if a.ndim > 1 else ()) + (b.shape[-1:] if b.ndim > 1 else ())
    return reshape(out, shape)


def transpose(x, axes=None) -> Value:
    """Permute axes (default: reverse them), like ``np.transpose``."""
    x = _value("transpose", x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(normalize_axis(a, x.ndim, "transpose") for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {tuple(axes)} are not a permutation of the axes of shape {x.shape}")
    return x if perm == tuple(range(x.ndim)) else _node("transpose", [x], perm=perm)


def reshape(x, shape) -> Value:
    """Same elements in row-major order with a new shape; one dimension may be -1."""
    x = _value("reshape", x)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if builtins.sum(1 for d in shape if d == -1) > 1:
        raise ShapeError(f"reshape: more than one -1 in {shape}")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.size % known:
            raise ShapeError(f"reshape: cannot reshape {x.shape} ({x.size} elements) to {shape}")
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    shape = check_shape(shape, "reshape")
    return x if shape == x.shape else _node("reshape", [x], shape=shape)


def broadcast_to(x, shape) -> Value:
    """``x`` broadcast to ``shape`` by NumPy rules (no node when it already has it)."""
    x = _value("broadcast_to", x)
    shape = check_shape(shape, "broadcast_to")
    return x if shape == x.shape else _node("broadcast_to", [x], shape=shape)


def pad(x, low, high, interior=None) -> Value:
    """Zero padding: ``low[a]`` zeros before, ``high[a]`` after and ``interior[a]`` between the
    elements of each axis ``a`` (non-negative)."""
    x = _value("pad", x)
    interior = (0,) * x.ndim if interior is None else interior
    return _node("pad", [x], low=low, high=high, interior=interior)


def _per_axis(op: str, name: str, value, k: int) -> tuple:
    """An int or a sequence of ``k`` ints, as a tuple of ``k``."""
    values = (value,) * k if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        values = tuple(operator.index(v) for v in values)
    except TypeError:
        raise ShapeError(f"{op}: {name} must be an int or {k} ints, got {value!r}") from None
    if len(values) != k:
        raise ShapeError(f"{op}: {name} must be an int or {k} ints, got {value!r}")
    return values


def windows(x, window, strides=1, dilation=1) -> Value:
    """Sliding windows over the last ``len(window)`` axes, as a view (im2col without a copy):
    shape ``lead + window + counts``, where element ``(..., i, j)`` is
    ``x[..., j * strides + i * dilation]``. A reshape of it is where the copy happens."""
    x = _value("windows", x)
    k = 1 if isinstance(window, (int, np.integer)) else len(window)
    window = _per_axis("windows", "window", window, k)
    return _node("windows", [x], window=window, strides=_per_axis("windows", "strides", strides, k),
                 dilation=_per_axis("windows", "dilation", dilation, k))


def fold(x, size, window, strides=1, dilation=1) -> Value:
    """The transpose of ``windows``: each window element added back at its place in zeros whose
    last axes have ``size`` (col2im)."""
    x = _value("fold", x)
    size = tuple(size)
    k = builtins.len(size)
    return _node("fold", [x], window=_per_axis("fold", "window", window, k),
                 strides=_per_axis("fold", "strides", strides, k), dilation=_per_axis("fold", "dilation", dilation, k),
                 size=size)


def random_uniform(key, shape, dtype="float32", stream=0) -> Value:
    """Uniform numbers in [0, 1) of ``shape``, a pure function of the int ``key`` (a value or a
    Python int) and ``stream``: element i is Philox4x32-10 of counter (i, stream). The same key
    gives the same numbers in the interpreter, on the CPU and on CUDA, and when remat
    recomputes them; use another key or stream for other numbers (each dropout layer its own)."""
    if not isinstance(key, Value):
        raise GraphError("random_uniform: the key must be a graph Value (an int input, or g.const(n))")
    return _node("random_uniform", [key], shape=check_shape(shape, "random_uniform"), dtype=dt.canonical(dtype),
                 stream=stream)


def concat(xs, axis=0) -> Value:
    """Join values along ``axis``; dtypes are promoted."""
    xs = list(xs)
    g = _graph_of("concat", xs)
    xs = [x if isinstance(x, Value) else g.const(x) for x in xs]
    dtype = dt.promote(*(x.dtype for x in xs))
    return _node("concat", [cast(x, dtype) for x in xs], axis=normalize_axis(axis, xs[0].ndim, "concat"))


def getitem(x: Value, index) -> Value:
    """Basic indexing: ints, slices, ``...`` and ``None``, as in NumPy."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, builtins.slice)
                or (isinstance(item, (int, np.integer)) and not isinstance(item, bool))):
            raise ShapeError(f"index {item!r}: only ints, slices, ... and None are supported "
                             f"(use take_along_axis to gather by values)")
    if builtins.sum(1 for i in items if i is Ellipsis) > 1:
        raise ShapeError("index: at most one ... is allowed")
    n_axes = builtins.sum(1 for i in items if i is not None and i is not Ellipsis)
    if n_axes > x.ndim:
        raise ShapeError(f"index {index!r}: too many indices for shape {x.shape}")
    at = next((k for k, i in enumerate(items) if i is Ellipsis), len(items))
    items = items[:at] + (builtins.slice(None),) * (x.ndim - n_axes) + items[at + 1:]
    starts, stops, steps, shape = [], [], [], []
    axis = 0
    for item in items:
        if item is None:
            shape.append(1)
            continue
        dim = x.shape[axis]
        if isinstance(item, builtins.slice):
            start, stop, step = item.indices(dim)
            n = len(range(start, stop, step))
            if builtins.abs(step) > dim:  # one element at most: step 1 (x[::10**30] fits no int64 attribute)
                stop, step = start + n, 1
            shape.append(n)
        else:
            if not -dim <= item < dim:
                raise ShapeError(f"index {item} is out of range for axis {axis} of size {dim} (shape {x.shape})")
            start, stop, step = operator.index(item) % dim, operator.index(item) % dim + 1, 1
        starts.append(start), stops.append(stop), steps.append(step)
        axis += 1
    full = all(s == (0, d, 1) for s, d in zip(zip(starts, stops, steps), x.shape))
    sliced = x if full else _node("slice", [x], starts=starts, stops=stops, steps=steps)
    return reshape(sliced, tuple(shape))


# ---------------------------------------------------------------- indexing


def take_along_axis(x, indices, axis) -> Value:
    """``np.take_along_axis``: gather along ``axis``; other axes broadcast. Indices must be in range."""
    g = _graph_of("take_along_axis", (x, indices))
    x, indices = (v if isinstance(v, Value) else g.const(v) for v in (x, indices))
    if x.ndim != indices.ndim:
        raise ShapeError(f"take_along_axis: x {x.shape} and indices {indices.shape} must have the same rank")
    axis = normalize_axis(axis, x.ndim, "take_along_axis")
    common = list(broadcast_shapes("take_along_axis", *(
        tuple(1 if i == axis else d for i, d in enumerate(s)) for s in (x.shape, indices.shape))))
    x = broadcast_to(x, tuple(common[:axis] + [x.shape[axis]] + common[axis + 1:]))
    indices = broadcast_to(indices, tuple(common[:axis] + [indices.shape[axis]] + common[axis + 1:]))
    return _node("take_along_axis", [x, indices], axis=axis)


def scatter_add(updates, indices, axis, size) -> Value:
    """Zeros with ``size`` entries along ``axis``, plus each update added at its index along
    that axis (repeats accumulate): the transpose of ``take_along_axis``."""
    g = _graph_of("scatter_add", (updates, indices))
    updates, indices = (v if isinstance(v, Value) else g.const(v) for v in (updates, indices))
    return _node("scatter_add", [updates, indices], axis=normalize_axis(axis, updates.ndim, "scatter_add"),
                 size=size)


def take(x, indices, axis=0) -> Value:
    """``np.take``: the slices of ``x`` along ``axis`` at ``indices`` (an embedding lookup:
    ``take(table, tokens)``); the result has ``indices``' axes in place of ``axis``."""
    g = _graph_of("take", (x, indices))
    x, indices = (v if isinstance(v, Value) else g.const(v) for v in (x, indices))
    return _node("take", [x, indices], axis=normalize_axis(axis, x.ndim, "take"))


def index_add(updates, indices, axis, size) -> Value:
    """Zeros with ``size`` entries along ``axis``, plus each slice of ``updates`` at
    ``indices``' axes added at its index (repeats accumulate): the transpose of ``take``."""
    g = _graph_of("index_add", (updates, indices))
    updates, indices = (v if isinstance(v, Value) else g.const(v) for v in (updates, indices))
    rank = updates.ndim - indices.ndim + 1  # the result's: axis (or -k) counts as in take's table
    axis = normalize_axis(axis, builtins.max(rank, 1), "index_add")
    return _node("index_add", [updates, indices], axis=axis, size=size)


def one_hot(labels, depth: int, dtype="float32") -> Value:
    """Integer labels -> one-hot vectors of length ``depth`` on a new last axis."""
    return _node("one_hot", [_value("one_hot", labels)], depth=depth, dtype=dt.canonical(dtype))


# ---------------------------------------------------------------- operators on values


class _Operators:
    """What ``x @ w + b``, ``-x``, ``x[0, 1:]``, ``x.T`` and ``x.sum()`` build: set on ``Value``
    below (as JAX sets its tracers' operators), since ``Value`` must exist before the builder."""

    def __add__(self, o): return add(self, o)
    def __radd__(self, o): return add(o, self)
    def __sub__(self, o): return sub(self, o)
    def __rsub__(self, o): return sub(o, self)
    def __mul__(self, o): return mul(self, o)
    def __rmul__(self, o): return mul(o, self)
    def __truediv__(self, o): return div(self, o)
    def __rtruediv__(self, o): return div(o, self)
    def __pow__(self, o): return pow(self, o)
    def __rpow__(self, o): return pow(o, self)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)
    def __neg__(self): return neg(self)
    def __pos__(self): return self
    def __abs__(self): return abs(self)
    def __lt__(self, o): return lt(self, o)
    def __le__(self, o): return le(self, o)
    def __gt__(self, o): return gt(self, o)
    def __ge__(self, o): return ge(self, o)
    def __eq__(self, o): return eq(self, o)  # noqa: E704
    def __ne__(self, o): return ne(self, o)
    def __getitem__(self, index): return getitem(self, index)

    @property
    def T(self):
        return transpose(self)

    def sum(self, axis=None, keepdims=False): return sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return min(self, axis, keepdims)
    def reshape(self, *shape): return reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return transpose(self, axes or None)
    def astype(self, dtype): return cast(self, dtype)


for _name, _member in vars(_Operators).items():  # (not __hash__, which defining __eq__ set to None)
    if _name not in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__"):
        setattr(Value, _name, _member)
