"""Shape helpers shared by the op table and the builder: broadcasting and axis normalisation."""

import math

import numpy as np

from ..errors import ShapeError

MAX_ELEMENTS = 2**62  # guards size arithmetic against overflow in numpy and generated code
MAX_BYTES = 2**63 - 1  # numpy's limit on an array (its intp), far beyond what any machine addresses


def _extent(dims) -> int:
    """The product of the nonzero dimensions: what numpy checks against its limits even when
    another dimension is 0 (it refuses ``np.empty((0, 2**63 - 1))``)."""
    return math.prod(d for d in dims if d)


def check_shape(shape, what: str) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{what}: shape must be a sequence of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) and not hasattr(d, "__index__"):
            raise ShapeError(f"{what}: shape must be a sequence of ints, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if any(d < 0 for d in dims):
        raise ShapeError(f"{what}: negative dimension in shape {dims}")
    if _extent(dims) >= MAX_ELEMENTS:
        raise ShapeError(f"{what}: shape {dims} has too many elements (its nonzero dimensions multiply to "
                         f"{_extent(dims)}, and must stay below 2**62)")
    return dims


def check_type(shape, dtype: str, what: str) -> tuple[int, ...]:
    """``check_shape``, and refuse a value no machine could hold: more bytes (counting the
    nonzero dimensions, as numpy does) than an array may have."""
    dims = check_shape(shape, what)
    nbytes = _extent(dims) * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise ShapeError(f"{what}: {dtype}{list(dims)} would take {nbytes} bytes, more than any array can "
                         f"(2**63 - 1)")
    return dims


def broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy broadcasting of ``shapes``; ShapeError naming ``op`` and the shapes if they clash."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            shown = " and ".join(str(tuple(s)) for s in shapes)
            raise ShapeError(f"{op}: shapes {shown} cannot be broadcast together")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def can_broadcast_to(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    if len(src) > len(dst):
        return False
    return all(s in (1, d) for s, d in zip(src, dst[len(dst) - len(src):]))


def normalize_axis(axis, rank: int, op: str) -> int:
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise ShapeError(f"{op}: axis must be an int, got {axis!r}")
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def normalize_axes(axes, rank: int, op: str) -> tuple[int, ...]:
    """None -> every axis; an int or a sequence -> sorted non-negative unique axes."""
    if axes is None:
        return tuple(range(rank))
    if not isinstance(axes, (tuple, list)):
        axes = (axes,)
    out = tuple(sorted(normalize_axis(a, rank, op) for a in axes))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {tuple(axes)}")
    return out


def reduced_shape(shape, axes, keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)
