"""The op table: every primitive op of the IR, defined once.

An ``OpDef`` holds an op's attribute schema, its shape/dtype rule (``infer``), its reference
numpy semantics (``reference``, used by the interpreter that every compiled result is tested
against) and its cost estimate. Gradient rules and lowerings live in their own tables, keyed by
the same names. Adding an op means adding a row here.

Primitives see explicit shapes and dtypes: elementwise ops get operands of equal shape and
dtype, because the builder (``build.py``) inserts ``broadcast_to`` and ``cast`` nodes first.
Composite ops (softmax, losses, layer_norm, ...) are built from these in ``composites.py``.
"""

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Callable, NamedTuple

import numpy as np

from ..errors import DataError, DTypeError, GraphError, ShapeError
from . import dtypes as dt
from .names import check_name
from .shapes import can_broadcast_to, check_shape, check_type, reduced_shape


class TensorType(NamedTuple):
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * dt.itemsize(self.dtype)


class Cost(NamedTuple):
    """Unfused cost of one node: arithmetic, transcendental calls, and memory traffic."""

    flops: int
    transcendentals: int
    bytes_read: int
    bytes_written: int


# attribute kinds: how an attribute value is checked, printed and parsed
ATTR_KINDS = ("int", "bool", "ints", "dtype", "name", "array")


class OpClass(StrEnum):
    """How the compiler runs an op. Every pass decides on these (and the sets below), never
    on op names; ``kind`` says what an op computes, for its cost rule and the docs."""

    SOURCE = "source"  # input, param, const: an argument or an array the graph holds
    VIEW = "view"  # its operand's memory seen another way, or the operand itself: no kernel
    ELEMENTWISE = "elementwise"  # fused into loop kernels
    REDUCTION = "reduction"  # a loop kernel that takes its elementwise prologue along
    LIBRARY = "library"  # one call (BLAS, numpy) on materialized operands


# the class of each kind of op, where an op does not name its own (``OpDef.cls``)
_CLASS_OF_KIND = {"source": OpClass.SOURCE, "elementwise": OpClass.ELEMENTWISE, "reduction": OpClass.REDUCTION,
                  "contraction": OpClass.LIBRARY, "layout": OpClass.VIEW, "index": OpClass.LIBRARY}


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str  # source | elementwise | reduction | contraction | layout | index
    arity: int | None  # None: one or more operands (concat)
    infer: Callable[[tuple[TensorType, ...], dict], TensorType]
    reference: Callable[..., np.ndarray] | None  # (attrs, *arrays); None for source ops
    attrs: dict[str, str] = field(default_factory=dict)  # attribute name -> kind
    flops_per_element: int = 0
    transcendental: bool = False
    differentiable: bool = True  # False: passes a zero gradient (compares, sign, argmax...)
    doc: str = ""
    cls: OpClass | None = None  # how the compiler runs it; None: the class of its kind

    def arity_fault(self, n: int) -> str | None:
        """Why ``n`` operands do not fit this op, or None when they do."""
        if self.arity is None:
            return None if n else f"expected at least 1 operand, got {n}"
        return None if n == self.arity else f"expected {self.arity} operands, got {n}"

    def cost(self, in_types, out_type) -> Cost:
        n = out_type.size
        if self.kind == "contraction":
            k = in_types[0].shape[-1]
            flops = 2 * n * k
        elif self.kind == "reduction":
            flops = in_types[0].size
        else:
            flops = self.flops_per_element * n
        return Cost(
            flops=flops,
            transcendentals=n if self.transcendental else 0,
            bytes_read=sum(t.nbytes for t in in_types),
            bytes_written=out_type.nbytes,
        )


OPS: dict[str, OpDef] = {}


def _register(op: OpDef) -> None:
    OPS[op.name] = op if op.cls is not None else replace(op, cls=_CLASS_OF_KIND[op.kind])


# ---------------------------------------------------------------- dtype classes

_DTYPE_CLASSES = {
    "float": (dt.FLOATS, "a float (float32 or float64)"),
    "numeric": (dt.INTS + dt.FLOATS, "numeric (int or float, not bool)"),
    "int": (dt.INTS, "an integer (int32 or int64)"),
    "bool": (("bool",), "bool"),
    "any": (dt.DTYPES, "any dtype"),
}


def _require(op: str, what: str, dtype: str, cls: str) -> None:
    allowed, described = _DTYPE_CLASSES[cls]
    if dtype not in allowed:
        hint = "; cast it with gc.cast(v, 'float32')" if cls == "float" else ""
        raise DTypeError(f"{op}: {what} must be {described}, got {dtype}{hint}")


def _same(op: str, types, what: str = "operand") -> TensorType:
    first = types[0]
    for t in types[1:]:
        if t.shape != first.shape:
            shown = " and ".join(str(x.shape) for x in types)
            raise ShapeError(f"{op}: {what} shapes {shown} differ (elementwise ops need equal shapes)")
        if t.dtype != first.dtype:
            shown = " and ".join(x.dtype for x in types)
            raise DTypeError(f"{op}: {what} dtypes {shown} differ")
    return first


# ---------------------------------------------------------------- source ops


def _source_infer(types, attrs):
    return TensorType(check_type(attrs["shape"], attrs["dtype"], attrs["name"]), attrs["dtype"])


def _const_infer(types, attrs):
    value = attrs["value"]
    return TensorType(value.shape, dt.canonical(value.dtype))


for _name, _doc in (("input", "a named data input"), ("param", "a named parameter (differentiated by default)")):
    _register(OpDef(_name, "source", 0, _source_infer, None,
                    {"name": "name", "shape": "ints", "dtype": "dtype"}, doc=_doc))
_register(OpDef("const", "source", 0, _const_infer, None, {"value": "array"}, doc="a constant array"))


# ---------------------------------------------------------------- elementwise ops


def _checked_unary(name: str, cls: str):
    def infer(types, attrs):
        (t,) = types
        _require(name, "operand", t.dtype, cls)
        return t

    return infer


def _stable_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


_erf = np.frompyfunc(math.erf, 1, 1)


def _extreme(greater: bool):
    """IEEE 754-2019 maximum (``greater``) or minimum: NaN wins, and -0 < +0, so the result does
    not depend on the operands' order (np.maximum returns either zero of a tie, by platform)."""
    def fn(a, b):
        if a.dtype.kind != "f":
            return np.maximum(a, b) if greater else np.minimum(a, b)
        wins = (a > b if greater else a < b) | np.isnan(a) | ((a == b) & (np.signbit(a) != greater))
        return np.where(wins, a, b)

    return fn


_maximum, _minimum = _extreme(True), _extreme(False)

# name: (dtype class, reference, flops per element, transcendental, differentiable, doc)
UNARY = {
    "neg": ("numeric", np.negative, 1, False, True, "-x"),
    "exp": ("float", np.exp, 1, True, True, "e**x"),
    "log": ("float", np.log, 1, True, True, "natural logarithm"),
    "sqrt": ("float", np.sqrt, 1, True, True, "square root"),
    "rsqrt": ("float", lambda x: np.reciprocal(np.sqrt(x)), 2, True, True, "1 / sqrt(x)"),
    "abs": ("numeric", np.abs, 1, False, True, "|x|; abs'(0) = 0"),
    "sign": ("numeric", np.sign, 1, False, False, "-1, 0 or 1 (zero gradient)"),
    "tanh": ("float", np.tanh, 1, True, True, "hyperbolic tangent"),
    "sigmoid": ("float", _stable_sigmoid, 4, True, True, "1 / (1 + exp(-x)), overflow-free"),
    "relu": ("numeric", lambda x: _maximum(x, np.zeros_like(x)), 1, False, True,
             "max(x, 0); relu(-0) = +0, relu'(0) = 0"),
    "square": ("numeric", np.square, 1, False, True, "x * x"),
    "reciprocal": ("float", np.reciprocal, 1, False, True, "1 / x"),
    "sin": ("float", np.sin, 1, True, True, "sine"),
    "cos": ("float", np.cos, 1, True, True, "cosine"),
    "log1p": ("float", np.log1p, 1, True, True, "log(1 + x), accurate near 0"),
    "expm1": ("float", np.expm1, 1, True, True, "exp(x) - 1, accurate near 0"),
    "softplus": ("float", lambda x: np.logaddexp(x.dtype.type(0), x), 3, True, True, "log(1 + exp(x)), overflow-free"),
    "erf": ("float", lambda x: np.asarray(_erf(x.astype(np.float64)), np.float64).astype(x.dtype), 1, True, True, "the error function"),
    "stop_gradient": ("any", lambda x: x, 0, False, False, "identity whose gradient is zero"),
}

for _name, (_cls, _fn, _flops, _trans, _diff, _doc) in UNARY.items():
    _register(OpDef(_name, "elementwise", 1, _checked_unary(_name, _cls),
                    lambda attrs, x, _fn=_fn: _fn(x), flops_per_element=_flops,
                    transcendental=_trans, differentiable=_diff, doc=_doc,
                    cls=OpClass.VIEW if _name == "stop_gradient" else None))


# not a builder function: the layout pass puts it under a reshape of a view it cannot see through
_register(OpDef("copy", "elementwise", 1, _checked_unary("copy", "any"), lambda attrs, x: x.copy(),
                doc="x in a buffer of its own (C order): what a reshape of a strided view reads"))


def _binary_infer(name: str, cls: str, out_dtype: str | None):
    def infer(types, attrs):
        t = _same(name, types)
        _require(name, "operands", t.dtype, cls)
        return TensorType(t.shape, out_dtype or t.dtype)

    return infer


NEGATIVE_POWER = "integers to negative integer powers are not allowed, got exponent {}"  # and in the kernels


def _power(a, b):
    """np.power, refusing an integer to a negative power as a DataError naming the exponent
    (numpy's ValueError says the same; the compiled kernels check it too). The exponent is
    made contiguous: numpy takes a broadcast 0.5 for sqrt, which differs from pow (IEEE
    754's, and numpy's own for other strides) at -0 and -inf."""
    if b.dtype.kind == "i" and b.size and b.min() < 0:
        raise DataError(NEGATIVE_POWER.format(b[b < 0].flat[0]))
    return np.power(a, np.array(b, order="C"))


# name: (dtype class, reference, differentiable, doc)
BINARY = {
    "add": ("numeric", np.add, True, "a + b"),
    "sub": ("numeric", np.subtract, True, "a - b"),
    "mul": ("numeric", np.multiply, True, "a * b"),
    "div": ("float", np.divide, True, "a / b (true division, floats only)"),
    "pow": ("numeric", _power, True, "a ** b; an integer to a negative power is a DataError"),
    "maximum": ("numeric", _maximum, True, "elementwise max (IEEE: NaN wins, -0 < +0); on ties the gradient goes to a"),
    "minimum": ("numeric", _minimum, True, "elementwise min (IEEE: NaN wins, -0 < +0); on ties the gradient goes to a"),
}
COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
           "eq": np.equal, "ne": np.not_equal}

for _name, (_cls, _fn, _diff, _doc) in BINARY.items():
    _register(OpDef(_name, "elementwise", 2, _binary_infer(_name, _cls, None),
                    lambda attrs, a, b, _fn=_fn: _fn(a, b), flops_per_element=1,
                    transcendental=_name == "pow", differentiable=_diff, doc=_doc))
for _name, _fn in COMPARE.items():
    _register(OpDef(_name, "elementwise", 2, _binary_infer(_name, "any", "bool"),
                    lambda attrs, a, b, _fn=_fn: _fn(a, b), flops_per_element=1,
                    differentiable=False, doc=f"elementwise comparison ({_name}) -> bool"))


def _where_infer(types, attrs):
    cond, a, b = types
    _require("where", "condition", cond.dtype, "bool")
    t = _same("where", (a, b))
    if cond.shape != t.shape:
        raise ShapeError(f"where: condition shape {cond.shape} differs from operand shape {t.shape}")
    return t


_register(OpDef("where", "elementwise", 3, _where_infer, lambda attrs, c, a, b: np.where(c, a, b),
                flops_per_element=1, doc="a where cond else b; gradient routed by cond"))


def _cast_infer(types, attrs):
    (t,) = types
    return TensorType(t.shape, attrs["dtype"])


_register(OpDef("checkpoint", "elementwise", 1, _checked_unary("checkpoint", "any"), lambda attrs, x: x,
                {"save": "bool"}, doc="identity that tells rematerialization to keep x for the backward "
                                      "(save=true) or never to keep it (save=false)", cls=OpClass.VIEW))
_register(OpDef("cast", "elementwise", 1, _cast_infer, lambda attrs, x: x.astype(attrs["dtype"]),
                {"dtype": "dtype"}, flops_per_element=1, doc="convert to another dtype"))


# ---------------------------------------------------------------- reductions


def _check_axes(op: str, axes, rank: int) -> None:
    if list(axes) != sorted(set(axes)) or any(not 0 <= a < rank for a in axes):
        raise ShapeError(f"{op}: axes {tuple(axes)} must be sorted, unique and within rank {rank}")


def _reduce_infer(name: str, cls: str):
    def infer(types, attrs):
        (t,) = types
        _require(name, "operand", t.dtype, cls)
        axes = attrs["axes"]
        _check_axes(name, axes, len(t.shape))
        if name in ("max", "min") and any(t.shape[a] == 0 for a in axes):
            raise ShapeError(f"{name}: cannot reduce over an empty axis of shape {t.shape}")
        return TensorType(reduced_shape(t.shape, axes, attrs["keepdims"]), t.dtype)

    return infer


def _sum_reference(attrs, x):
    """Float sums accumulate in float64: the oracle should be more accurate than what it checks."""
    acc = np.float64 if dt.is_float(x.dtype.name) else x.dtype
    return np.sum(x, axis=attrs["axes"], keepdims=attrs["keepdims"], dtype=acc).astype(x.dtype)


def _extreme_reference(greater: bool):
    """np.max or np.min with the zeros ordered as ``maximum`` orders them (-0 < +0): a zero
    result is +0 for max when any +0 is among the reduced elements, and -0 for min when any -0
    is. numpy's SIMD reductions return whichever zero their lanes met first."""
    def ref(attrs, x):
        axes, keepdims = attrs["axes"], attrs["keepdims"]
        out = (np.max if greater else np.min)(x, axis=axes, keepdims=keepdims)
        if x.dtype.kind != "f" or not x.size:
            return out
        winner = np.any((x == 0) & (np.signbit(x) != greater), axis=axes, keepdims=keepdims)
        negative = winner != greater  # max: no +0 among them; min: some -0
        return np.where(out == 0, np.where(negative, x.dtype.type(-0.0), x.dtype.type(0.0)), out)

    return ref


REDUCTIONS = {
    "sum": ("numeric", _sum_reference, "sum over axes"),
    "max": ("numeric", _extreme_reference(True),
            "max over axes (NaN wins, -0 < +0); on ties the gradient is shared equally among the maxima"),
    "min": ("numeric", _extreme_reference(False),
            "min over axes (NaN wins, -0 < +0); on ties the gradient is shared equally among the minima"),
}
for _name, (_cls, _ref, _doc) in REDUCTIONS.items():
    _register(OpDef(_name, "reduction", 1, _reduce_infer(_name, _cls), _ref,
                    {"axes": "ints", "keepdims": "bool"}, doc=_doc))


def _arg_infer(name: str):
    def infer(types, attrs):
        (t,) = types
        _require(name, "operand", t.dtype, "numeric")
        rank = len(t.shape)
        axis = attrs["axis"]
        if not 0 <= axis < rank:
            raise ShapeError(f"{name}: axis {axis} is out of range for shape {t.shape}")
        if t.shape[axis] == 0:
            raise ShapeError(f"{name}: cannot reduce over an empty axis of shape {t.shape}")
        return TensorType(reduced_shape(t.shape, (axis,), attrs["keepdims"]), "int64")

    return infer


for _name, _fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    _register(OpDef(_name, "reduction", 1, _arg_infer(_name),
                    lambda attrs, x, _fn=_fn: _fn(x, axis=attrs["axis"], keepdims=attrs["keepdims"]).astype(np.int64),
                    {"axis": "int", "keepdims": "bool"}, differentiable=False,
                    doc="index of the first extreme value along axis (int64)", cls=OpClass.LIBRARY))


# ---------------------------------------------------------------- matmul


def _matmul_infer(types, attrs):
    a, b = types
    for t in types:
        _require("matmul", "operands", t.dtype, "numeric")
    if a.dtype != b.dtype:
        raise DTypeError(f"matmul: operand dtypes {a.dtype} and {b.dtype} differ")
    if len(a.shape) < 2 or len(a.shape) != len(b.shape):
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} must both have rank >= 2 and equal rank")
    if a.shape[:-2] != b.shape[:-2]:
        raise ShapeError(f"matmul: batch dimensions of {a.shape} and {b.shape} differ")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit: "
                         f"contraction dimensions {a.shape[-1]} and {b.shape[-2]} differ")
    return TensorType(a.shape[:-1] + b.shape[-1:], a.dtype)


def _matmul_reference(attrs, a, b):
    if dt.is_float(a.dtype.name):
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    return np.matmul(a, b)


_register(OpDef("matmul", "contraction", 2, _matmul_infer, _matmul_reference,
                doc="(..., m, k) @ (..., k, n) with equal batch dimensions"))


# ---------------------------------------------------------------- layout


def _transpose_infer(types, attrs):
    (t,) = types
    perm = attrs["perm"]
    if sorted(perm) != list(range(len(t.shape))):
        raise ShapeError(f"transpose: perm {perm} is not a permutation of the axes of shape {t.shape}")
    return TensorType(tuple(t.shape[p] for p in perm), t.dtype)


def _reshape_infer(types, attrs):
    (t,) = types
    shape = check_shape(attrs["shape"], "reshape")
    if math.prod(shape) != t.size:
        raise ShapeError(f"reshape: cannot reshape {t.shape} ({t.size} elements) to {shape}")
    return TensorType(shape, t.dtype)


def _broadcast_infer(types, attrs):
    (t,) = types
    shape = check_shape(attrs["shape"], "broadcast_to")
    if not can_broadcast_to(t.shape, shape):
        raise ShapeError(f"broadcast_to: cannot broadcast shape {t.shape} to {shape}")
    return TensorType(shape, t.dtype)


def _concat_infer(types, attrs):
    first = types[0]
    axis = attrs["axis"]
    rank = len(first.shape)
    if not 0 <= axis < rank:
        raise ShapeError(f"concat: axis {axis} is out of range for shape {first.shape}")
    for t in types[1:]:
        if t.dtype != first.dtype:
            raise DTypeError(f"concat: operand dtypes {first.dtype} and {t.dtype} differ")
        if len(t.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ShapeError(f"concat: shapes {first.shape} and {t.shape} differ off axis {axis}")
    total = sum(t.shape[axis] for t in types)
    return TensorType(first.shape[:axis] + (total,) + first.shape[axis + 1:], first.dtype)


def _slice_infer(types, attrs):
    (t,) = types
    starts, stops, steps = attrs["starts"], attrs["stops"], attrs["steps"]
    rank = len(t.shape)
    if not len(starts) == len(stops) == len(steps) == rank:
        raise ShapeError(f"slice: starts, stops and steps need one entry per axis of shape {t.shape}")
    out = []
    for axis, (dim, start, stop, step) in enumerate(zip(t.shape, starts, stops, steps)):
        if step == 0:
            raise ShapeError(f"slice: step 0 on axis {axis}")
        n = max(0, -((start - stop) // step))  # len(range(start, stop, step)), for ints of any size
        if n and not (0 <= start < dim and 0 <= start + (n - 1) * step < dim):
            raise ShapeError(f"slice: range({start}, {stop}, {step}) leaves axis {axis} of size {dim}")
        out.append(n)
    return TensorType(tuple(out), t.dtype)


def _slice_reference(attrs, x):
    for axis, (start, stop, step) in enumerate(zip(attrs["starts"], attrs["stops"], attrs["steps"])):
        x = np.take(x, np.arange(start, stop, step, dtype=np.int64), axis=axis)
    return x


def _pad_infer(types, attrs):
    (t,) = types
    low, high, interior = attrs["low"], attrs["high"], attrs["interior"]
    if not len(low) == len(high) == len(interior) == len(t.shape):
        raise ShapeError(f"pad: low, high and interior need one entry per axis of shape {t.shape}")
    if min(low + high + interior, default=0) < 0:
        raise ShapeError(f"pad: negative padding low={low} high={high} interior={interior}")
    return TensorType(tuple(lo + hi + (n + (n - 1) * i if n else 0)
                            for n, lo, hi, i in zip(t.shape, low, high, interior)), t.dtype)


def pad_positions(x_shape, low, interior):
    """Where ``pad`` puts the elements of its operand, per axis (shared with slice's gradient)."""
    return tuple(slice(lo, lo + (n - 1) * (i + 1) + 1, i + 1) for n, lo, i in zip(x_shape, low, interior))


def _pad_reference(attrs, x):
    out = np.zeros(_pad_infer((TensorType(x.shape, x.dtype.name),), attrs).shape, dtype=x.dtype)
    out[pad_positions(x.shape, attrs["low"], attrs["interior"])] = x
    return out


_register(OpDef("transpose", "layout", 1, _transpose_infer,
                lambda attrs, x: np.transpose(x, attrs["perm"]), {"perm": "ints"}, doc="permute axes"))
_register(OpDef("reshape", "layout", 1, _reshape_infer,
                lambda attrs, x: np.reshape(x, attrs["shape"]), {"shape": "ints"},
                doc="same elements in row-major order, new shape"))
_register(OpDef("broadcast_to", "layout", 1, _broadcast_infer,
                lambda attrs, x: np.broadcast_to(x, attrs["shape"]), {"shape": "ints"},
                doc="NumPy broadcasting made explicit; its gradient sums over the broadcast axes"))
_register(OpDef("concat", "layout", None, _concat_infer,
                lambda attrs, *xs: np.concatenate(xs, axis=attrs["axis"]), {"axis": "int"},
                doc="join operands along axis", cls=OpClass.LIBRARY))
_register(OpDef("pad", "layout", 1, _pad_infer, _pad_reference,
                {"low": "ints", "high": "ints", "interior": "ints"},
                doc="zeros around (low, high) and between (interior) the elements; the transpose of slice",
                cls=OpClass.LIBRARY))
_register(OpDef("slice", "layout", 1, _slice_infer, _slice_reference,
                {"starts": "ints", "stops": "ints", "steps": "ints"},
                doc="x[start:stop:step] on every axis (Python range semantics, any nonzero step)"))


# ---------------------------------------------------------------- sliding windows (convolution, pooling)


def window_counts(op: str, spatial, attrs) -> tuple:
    """How many windows fit along each of the trailing axes ``spatial`` (a ShapeError names the
    axis a window does not fit, or a window attribute out of range)."""
    window, strides, dilation = attrs["window"], attrs["strides"], attrs["dilation"]
    if not len(window) == len(strides) == len(dilation) == len(spatial):
        raise ShapeError(f"{op}: window {window}, strides {strides} and dilation {dilation} need one entry "
                         f"per windowed axis ({len(spatial)})")
    for name, values in (("window", window), ("strides", strides), ("dilation", dilation)):
        if min(values, default=1) < 1:
            raise ShapeError(f"{op}: {name} {values} must be at least 1 on every axis")
    counts = []
    for axis, (n, w, s, d) in enumerate(zip(spatial, window, strides, dilation)):
        reach = d * (w - 1) + 1
        if reach > n:
            raise ShapeError(f"{op}: window {w} (dilation {d}, reach {reach}) is larger than windowed axis "
                             f"{axis} of size {n}")
        counts.append((n - reach) // s + 1)
    return tuple(counts)


def _windows_infer(types, attrs):
    (t,) = types
    k = len(attrs["window"])
    if not 1 <= k <= len(t.shape):
        raise ShapeError(f"windows: {k} windowed axes do not fit shape {t.shape}")
    lead = t.shape[:len(t.shape) - k]
    return TensorType(lead + attrs["window"] + window_counts("windows", t.shape[len(lead):], attrs), t.dtype)


def window_strides(attrs, strides) -> tuple:
    """The strides of ``windows`` over an array of ``strides``: the lead axes', then each
    window offset's (dilation steps), then each window position's (stride steps)."""
    k = len(attrs["window"])
    lead, spatial = tuple(strides[:len(strides) - k]), strides[len(strides) - k:]
    return (lead + tuple(s * d for s, d in zip(spatial, attrs["dilation"]))
            + tuple(s * st for s, st in zip(spatial, attrs["strides"])))


def windows_view(attrs, x):
    """``windows`` as a read-only numpy view of ``x`` (no copy)."""
    shape = _windows_infer((TensorType(x.shape, x.dtype.name),), attrs).shape
    return np.lib.stride_tricks.as_strided(x, shape, window_strides(attrs, x.strides), writeable=False)


def _fold_infer(types, attrs):
    (t,) = types
    k, size = len(attrs["window"]), attrs["size"]
    if len(size) != k or len(t.shape) < 2 * k:
        raise ShapeError(f"fold: size {size} and window {attrs['window']} do not fit shape {t.shape}")
    lead = t.shape[:len(t.shape) - 2 * k]
    expected = lead + attrs["window"] + window_counts("fold", size, attrs)
    if t.shape != expected:
        raise ShapeError(f"fold: windows of size {size} have shape {expected}, got {t.shape}")
    return TensorType(lead + size, t.dtype)


def _fold_reference(attrs, g):
    """Each window element added back at its place, one window offset at a time in row-major
    order (the compiled kernels add in the same order, so the sums agree bit for bit)."""
    k = len(attrs["window"])
    lead = g.shape[:g.ndim - 2 * k]
    out = np.zeros(lead + attrs["size"], dtype=g.dtype)
    counts = g.shape[g.ndim - k:]
    for offset in np.ndindex(*attrs["window"]):
        at = tuple(slice(i * d, i * d + s * (n - 1) + 1, s)
                   for i, d, s, n in zip(offset, attrs["dilation"], attrs["strides"], counts))
        out[(Ellipsis,) + at] += g[(Ellipsis,) + offset + (slice(None),) * k]
    return out


_WINDOW_ATTRS = {"window": "ints", "strides": "ints", "dilation": "ints"}
_register(OpDef("windows", "layout", 1, _windows_infer, lambda attrs, x: windows_view(attrs, x).copy(),
                _WINDOW_ATTRS, doc="sliding windows over the trailing axes: shape lead + window + counts, "
                                   "element (..., i, j) = x[..., j * stride + i * dilation] (im2col as a view)"))
_register(OpDef("fold", "index", 1, _fold_infer, _fold_reference, {**_WINDOW_ATTRS, "size": "ints"},
                doc="the transpose of windows: each window element added back at its place in zeros of "
                    "the trailing axes `size` (col2im)"))


# ---------------------------------------------------------------- indexing


def _check_indices(op: str, idx: np.ndarray, size: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)].flat[0]
        raise DataError(f"{op}: index {bad} is out of range [0, {size})")


def _take_infer(types, attrs):
    x, idx = types
    _require("take_along_axis", "indices", idx.dtype, "int")
    axis = attrs["axis"]
    rank = len(x.shape)
    if not 0 <= axis < rank:
        raise ShapeError(f"take_along_axis: axis {axis} is out of range for shape {x.shape}")
    if len(idx.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, idx.shape)) if i != axis):
        raise ShapeError(f"take_along_axis: indices shape {idx.shape} must match {x.shape} off axis {axis}")
    return TensorType(idx.shape, x.dtype)


def _take_reference(attrs, x, idx):
    _check_indices("take_along_axis", idx, x.shape[attrs["axis"]])
    return np.take_along_axis(x, idx, axis=attrs["axis"])


def _one_hot_infer(types, attrs):
    (t,) = types
    _require("one_hot", "labels", t.dtype, "int")
    if attrs["depth"] < 0:
        raise ShapeError(f"one_hot: depth {attrs['depth']} is negative")
    return TensorType(t.shape + (attrs["depth"],), attrs["dtype"])


def _one_hot_reference(attrs, labels):
    """Allocates only the result: ``labels == arange(depth)`` would allocate ``depth`` elements
    even for no labels (constant folding runs this on any depth; see ``passes/simplify``)."""
    depth = attrs["depth"]
    _check_indices("one_hot", labels, depth)
    out = np.zeros(labels.shape + (depth,), dtype=attrs["dtype"])
    np.put_along_axis(out, labels[..., None].astype(np.intp), 1, axis=-1)
    return out


def _scatter_infer(types, attrs):
    updates, idx = types
    _require("scatter_add", "indices", idx.dtype, "int")
    axis, size = attrs["axis"], attrs["size"]
    if not 0 <= axis < len(updates.shape):
        raise ShapeError(f"scatter_add: axis {axis} is out of range for shape {updates.shape}")
    if idx.shape != updates.shape:
        raise ShapeError(f"scatter_add: indices shape {idx.shape} differs from updates shape {updates.shape}")
    if size < 0:
        raise ShapeError(f"scatter_add: size {size} is negative")
    return TensorType(updates.shape[:axis] + (size,) + updates.shape[axis + 1:], updates.dtype)


def _scatter_reference(attrs, updates, idx):
    axis = attrs["axis"]
    _check_indices("scatter_add", idx, attrs["size"])
    acc = np.float64 if dt.is_float(updates.dtype.name) else updates.dtype
    out = np.zeros(_scatter_infer((TensorType(updates.shape, updates.dtype.name), TensorType(idx.shape, idx.dtype.name)),
                                  attrs).shape, dtype=acc)
    where = list(np.indices(updates.shape, sparse=True))
    where[axis] = idx
    np.add.at(out, tuple(where), updates)
    return out.astype(updates.dtype)


def _axis_in(op: str, axis: int, shape) -> None:
    if not 0 <= axis < len(shape):
        raise ShapeError(f"{op}: axis {axis} is out of range for shape {shape}")


def _gather_infer(types, attrs):
    x, idx = types
    _require("take", "indices", idx.dtype, "int")
    axis = attrs["axis"]
    _axis_in("take", axis, x.shape)
    return TensorType(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)


def _gather_reference(attrs, x, idx):
    _check_indices("take", idx, x.shape[attrs["axis"]])
    return np.take(x, idx, axis=attrs["axis"])


def _index_add_infer(types, attrs):
    updates, idx = types
    _require("index_add", "indices", idx.dtype, "int")
    axis, size, k = attrs["axis"], attrs["size"], len(idx.shape)
    if not 0 <= axis <= len(updates.shape) - k:
        raise ShapeError(f"index_add: axis {axis} with indices of rank {k} is out of range for updates "
                         f"{updates.shape}")
    if updates.shape[axis:axis + k] != idx.shape:
        raise ShapeError(f"index_add: updates {updates.shape} must have the indices' shape {idx.shape} "
                         f"at axes {axis}..{axis + k - 1}")
    if size < 0:
        raise ShapeError(f"index_add: size {size} is negative")
    return TensorType(updates.shape[:axis] + (size,) + updates.shape[axis + k:], updates.dtype)


def _index_add_reference(attrs, updates, idx):
    axis, size = attrs["axis"], attrs["size"]
    _check_indices("index_add", idx, size)
    acc = np.float64 if dt.is_float(updates.dtype.name) else updates.dtype
    out = np.zeros(updates.shape[:axis] + (size,) + updates.shape[axis + idx.ndim:], dtype=acc)
    np.add.at(out, (slice(None),) * axis + (idx,), updates)
    return out.astype(updates.dtype)


_register(OpDef("take_along_axis", "index", 2, _take_infer, _take_reference, {"axis": "int"},
                doc="x[..., idx, ...] along axis; indices must lie in [0, size)"))
_register(OpDef("scatter_add", "index", 2, _scatter_infer, _scatter_reference, {"axis": "int", "size": "int"},
                doc="zeros of size `size` along axis, plus each update added at its index; "
                    "the transpose of take_along_axis"))
_register(OpDef("take", "index", 2, _gather_infer, _gather_reference, {"axis": "int"},
                doc="x[..., idx, ...]: whole slices of x along axis picked by idx (an embedding lookup); "
                    "indices must lie in [0, size)"))
_register(OpDef("index_add", "index", 2, _index_add_infer, _index_add_reference, {"axis": "int", "size": "int"},
                doc="zeros of size `size` along axis, plus each slice of updates added at its index; "
                    "the transpose of take"))
# ---------------------------------------------------------------- counter-based random numbers

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # Philox4x32's multipliers and key increments (Salmon et al., SC'11)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)
PHILOX_ROUNDS = 10
LOW32 = 0xFFFFFFFF


def philox4x32(counter: tuple, key: tuple) -> tuple:
    """Philox4x32-10 of four 32-bit counter words and two key words, as uint64 numpy arrays (or
    scalars) holding 32-bit values: the four output words. The kernels run the same rounds
    (``codegen/library.py``), so every target draws the same bits."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    m0, m1, w0, w1, low = (np.uint64(v) for v in PHILOX_M + PHILOX_W + (LOW32,))
    for _ in range(PHILOX_ROUNDS):
        p0, p1 = m0 * c0, m1 * c2
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & low, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & low
        k0, k1 = (k0 + w0) & low, (k1 + w1) & low
    return c0, c1, c2, c3


def _random_infer(types, attrs):
    (key,) = types
    _require("random_uniform", "key", key.dtype, "int")
    if key.shape != ():
        raise ShapeError(f"random_uniform: the key must be a scalar (shape ()), got shape {key.shape}")
    _require("random_uniform", "dtype", attrs["dtype"], "float")
    return TensorType(check_shape(attrs["shape"], "random_uniform"), attrs["dtype"])


def _random_reference(attrs, key):
    """Element ``i`` (row-major) is Philox4x32-10 of counter (i, stream) under the 64-bit key:
    float32 from the first word's top 24 bits, float64 from 53 bits of the first two."""
    low = np.uint64(LOW32)
    k = np.array(key, np.int64).astype(np.uint64)[()]
    stream = np.array(attrs["stream"], np.int64).astype(np.uint64)[()]
    flat = np.arange(math.prod(attrs["shape"]), dtype=np.uint64)
    words = philox4x32((flat & low, flat >> np.uint64(32), np.full_like(flat, stream & low),
                        np.full_like(flat, stream >> np.uint64(32))), (k & low, k >> np.uint64(32)))
    if attrs["dtype"] == "float32":
        out = (words[0] >> np.uint64(8)).astype(np.float32) * np.float32(2.0 ** -24)
    else:
        out = ((words[0] << np.uint64(21)) | (words[1] >> np.uint64(11))).astype(np.float64) * 2.0 ** -53
    return out.reshape(attrs["shape"])


_register(OpDef("random_uniform", "index", 1, _random_infer, _random_reference,
                {"shape": "ints", "dtype": "dtype", "stream": "int"}, differentiable=False,
                doc="uniform numbers in [0, 1) from an int key: element i is Philox4x32-10 of counter "
                    "(i, stream), so a key gives the same numbers on every target and every recompute"))
_register(OpDef("one_hot", "index", 1, _one_hot_infer, _one_hot_reference, {"depth": "int", "dtype": "dtype"},
                differentiable=False, doc="labels -> one-hot rows of length depth; labels must lie in [0, depth)",
                cls=OpClass.ELEMENTWISE))


# ---------------------------------------------------------------- op classes, for the passes


def _ops_of(cls: OpClass) -> frozenset:
    return frozenset(name for name, op in OPS.items() if op.cls is cls)


SOURCES = _ops_of(OpClass.SOURCE)
ARGUMENTS = frozenset({"input", "param"})  # the sources a caller passes: the graph's signature
VIEWS = _ops_of(OpClass.VIEW)
# views a kernel reads by index arithmetic on the array underneath; reshape's would take a
# division per index, so the CPU's kernels read a reshape as its own (numpy-viewed) array
INDEXED_VIEWS = VIEWS - {"reshape"}
LIBRARY = _ops_of(OpClass.LIBRARY)


def op_class(v) -> OpClass:
    return OPS[v.op].cls


def base_of(v, through=VIEWS):
    """The value underneath ``v``'s chain of views (``through``: which ops count as views):
    the buffer, argument or constant whose memory it reads."""
    while v.op in through:
        v = v.inputs[0]
    return v


def reshaped_strides(shape, strides, new_shape) -> tuple | None:
    """The strides of ``new_shape`` over the elements that ``shape`` with ``strides`` reads in
    row-major order, or None where no strides can (numpy's reshape would copy). Each run of
    axes that merges or splits must be contiguous within itself."""
    if math.prod(shape) <= 1:
        return tuple(0 for _ in new_shape)
    old = [(n, s) for n, s in zip(shape, strides) if n != 1]
    dims, steps = [n for n, _ in old], [s for _, s in old]
    out = [0] * len(new_shape)
    oi = ni = 0
    while ni < len(new_shape) and oi < len(dims):
        oj, nj, have, want = oi + 1, ni + 1, dims[oi], new_shape[ni]
        while have != want:
            if want < have:
                want, nj = want * new_shape[nj], nj + 1
            else:
                have, oj = have * dims[oj], oj + 1
        if any(steps[k] != dims[k + 1] * steps[k + 1] for k in range(oi, oj - 1)):
            return None
        out[nj - 1] = steps[oj - 1]
        for k in range(nj - 1, ni, -1):
            out[k - 1] = out[k] * new_shape[k]
        oi, ni = oj, nj
    return tuple(out)


def _c_strides(shape) -> tuple:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def view_strides(v) -> tuple | None:
    """The element strides of ``v`` over the buffer underneath its views, that buffer laid out
    in C order (as every buffer the compiler writes is), or None where a reshape among the
    views cannot be one."""
    chain = []
    while v.op in VIEWS:
        chain.append(v)
        v = v.inputs[0]
    strides = _c_strides(v.shape)
    for w in reversed(chain):
        x = w.inputs[0]
        if w.op == "transpose":
            strides = tuple(strides[p] for p in w.attrs["perm"])
        elif w.op == "broadcast_to":
            lead = w.ndim - x.ndim
            strides = (0,) * lead + tuple(0 if n == 1 and w.shape[lead + k] != 1 else s
                                          for k, (n, s) in enumerate(zip(x.shape, strides)))
        elif w.op == "slice":
            strides = tuple(s * step for s, step in zip(strides, w.attrs["steps"]))
        elif w.op == "windows":
            strides = window_strides(w.attrs, strides)
        elif w.op == "reshape":
            strides = reshaped_strides(x.shape, strides, w.shape)
            if strides is None:
                return None
    return strides


def flops(v) -> int:
    """Unfused flops of value ``v``, from its op's cost rule (sources cost none)."""
    if OPS[v.op].cls is OpClass.SOURCE:
        return 0
    return OPS[v.op].cost(tuple(i.type for i in v.inputs), v.type).flops


def graph_flops(graph) -> int:
    """Unfused flops of every op in ``graph``."""
    return sum(flops(v) for v in graph.nodes)


# ---------------------------------------------------------------- attribute checking

_INT64 = np.iinfo(np.int64)  # every int attribute must fit: kernels and numpy index with int64


def _attr_int(v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError
    if not _INT64.min <= v <= _INT64.max:
        raise OverflowError(f"{v} does not fit int64")
    return int(v)


def _attr_bool(v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError
    return bool(v)


def _attr_ints(v):
    if not isinstance(v, (tuple, list)):
        raise TypeError
    return tuple(_attr_int(x) for x in v)


def _attr_array(v):
    if not isinstance(v, np.ndarray):
        raise TypeError
    a = np.array(v, dtype=dt.canonical(v.dtype), copy=True)
    a.flags.writeable = False
    return a


_ATTR_CHECKS = {"int": _attr_int, "bool": _attr_bool, "ints": _attr_ints, "dtype": dt.canonical,
                "name": lambda v: check_name(v, "name"), "array": _attr_array}
_ATTR_DESCRIPTIONS = {"int": "an int", "bool": "a bool", "ints": "a sequence of ints", "dtype": "a dtype",
                      "name": "a name", "array": "a numpy array"}


def check_attrs(op: OpDef, attrs: dict) -> dict:
    """``attrs`` checked against ``op``'s schema and normalised (tuples, canonical dtypes, frozen arrays)."""
    if not isinstance(attrs, dict):
        raise GraphError(f"{op.name}: attributes must be a dict, got {type(attrs).__name__}")
    missing = set(op.attrs) - set(attrs)
    extra = set(attrs) - set(op.attrs)
    if missing or extra:
        parts = [f"missing {sorted(missing)}" if missing else "", f"unexpected {sorted(extra)}" if extra else ""]
        raise GraphError(f"{op.name}: attributes {' and '.join(p for p in parts if p)}")
    out = {}
    for name, kind in op.attrs.items():
        try:
            out[name] = _ATTR_CHECKS[kind](attrs[name])
        except TypeError:
            raise GraphError(f"{op.name}: attribute {name!r} must be {_ATTR_DESCRIPTIONS[kind]}, "
                             f"got {attrs[name]!r}") from None
        except OverflowError as e:
            raise GraphError(f"{op.name}: attribute {name!r}: {e}") from None
    return out
