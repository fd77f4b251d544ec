"""Reverse-mode rules: ``VJP[op](v, g, i)`` is the cotangent of operand ``i`` of value ``v``
given the cotangent ``g`` of ``v`` (same shape as ``v``). It has operand ``i``'s shape, so no
Jacobian is ever built. Rules emit differentiable primitives, so ``grad(grad(g))`` works.

Ops without a rule pass no gradient; they are the ones the op table marks non-differentiable
(compares, sign, argmax, argmin, one_hot, stop_gradient).
"""

from ...ir import build as b
from ...ir.ops import pad_positions
from ...ir.shapes import reduced_shape
from .derivatives import PARTIALS, scale


def zeros_like(v):
    return b.broadcast_to(v.graph.const(0, v.dtype), v.shape)


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting ``shape`` to ``g.shape`` added or stretched."""
    lead = g.ndim - len(shape)
    axes = list(range(lead)) + [lead + a for a, d in enumerate(shape) if d == 1 and g.shape[lead + a] != 1]
    return b.reshape(b.sum(g, axes, keepdims=True), shape) if axes else b.reshape(g, shape)


def keepdims_shape(v):
    """The shape of reduction ``v``'s result with its reduced axes kept as size 1."""
    x = v.inputs[0]
    return reduced_shape(x.shape, v.attrs["axes"], True)


def _elementwise(v, g, i):
    return scale(g, PARTIALS[v.op](v, i))


def _where(v, g, i):
    cond = v.inputs[0]
    zeros = zeros_like(g)
    return b.where(cond, g, zeros) if i == 1 else b.where(cond, zeros, g)


def _sum(v, g, i):
    return b.broadcast_to(b.reshape(g, keepdims_shape(v)), v.inputs[0].shape)


def extreme_mask(v):
    """For a max/min reduction: 1 at the extreme elements divided by their count, else 0.
    Tied maxima share the gradient equally (as JAX and PyTorch do)."""
    x = v.inputs[0]
    hit = b.cast(b.eq(x, b.broadcast_to(b.reshape(v, keepdims_shape(v)), x.shape)), x.dtype)
    return hit / b.broadcast_to(b.sum(hit, v.attrs["axes"], keepdims=True), x.shape)


def _extreme(v, g, i):
    x = v.inputs[0]
    return extreme_mask(v) * b.broadcast_to(b.reshape(g, keepdims_shape(v)), x.shape)


def swap_last(x):
    perm = list(range(x.ndim))
    perm[-2:] = perm[-1], perm[-2]
    return b.transpose(x, perm)


def _matmul(v, g, i):
    a, c = v.inputs
    return b.matmul(g, swap_last(c)) if i == 0 else b.matmul(swap_last(a), g)


def _transpose(v, g, i):
    perm = v.attrs["perm"]
    return b.transpose(g, [perm.index(a) for a in range(len(perm))])


def _concat(v, g, i):
    axis = v.attrs["axis"]
    start = sum(x.shape[axis] for x in v.inputs[:i])
    index = [slice(None)] * v.ndim
    index[axis] = slice(start, start + v.inputs[i].shape[axis])
    return g[tuple(index)]


def _slice(v, g, i):
    """Scatter ``g`` back into zeros: un-reverse negative-step axes, then pad with zeros
    (``pad`` is the transpose of ``slice``)."""
    x = v.inputs[0]
    if not v.size:
        return zeros_like(x)
    low, high, interior, flips = [], [], [], []
    for dim, start, step, n in zip(x.shape, v.attrs["starts"], v.attrs["steps"], v.shape):
        first = start if step > 0 else start + (n - 1) * step
        low.append(first)
        interior.append(abs(step) - 1)
        high.append(dim - 1 - (first + (n - 1) * abs(step)))
        flips.append(step < 0)
    if any(flips):
        g = g[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    return b.pad(g, low, high, interior)


def _take_along_axis(v, g, i):
    """A scatter-add of ``g`` at the indices; with one index per row along the axis (an argmax
    pick, a max-pool) nothing collides, so it is a select: ``g`` where the index points, else 0,
    an elementwise op that fuses, not a scatter."""
    x, idx = v.inputs
    axis = v.attrs["axis"]
    if idx.shape[axis] != 1:
        return b.scatter_add(g, idx, axis, x.shape[axis])
    rows = idx.shape[:axis] + idx.shape[axis + 1:]
    hit = b.one_hot(b.reshape(idx, rows), x.shape[axis], "bool")  # the new axis last: move it to ``axis``
    hit = b.transpose(hit, list(range(axis)) + [x.ndim - 1] + list(range(axis, x.ndim - 1)))
    return b.where(hit, b.broadcast_to(g, x.shape), zeros_like(x))


def window_attrs(v) -> dict:
    return {"window": v.attrs["window"], "strides": v.attrs["strides"], "dilation": v.attrs["dilation"]}


def _pad(v, g, i):
    x = v.inputs[0]
    positions = pad_positions(x.shape, v.attrs["low"], v.attrs["interior"])
    return v.graph.add_node("slice", [g], {"starts": [p.start for p in positions],
                                           "stops": [p.stop for p in positions],
                                           "steps": [p.step for p in positions]})


VJP = {
    **{op: _elementwise for op in PARTIALS},
    "where": _where,
    "cast": lambda v, g, i: b.cast(g, v.inputs[0].dtype),
    "checkpoint": lambda v, g, i: g,
    "sum": _sum,
    "max": _extreme,
    "min": _extreme,
    "matmul": _matmul,
    "transpose": _transpose,
    "reshape": lambda v, g, i: b.reshape(g, v.inputs[0].shape),
    "broadcast_to": lambda v, g, i: unbroadcast(g, v.inputs[0].shape),
    "concat": _concat,
    "slice": _slice,
    "pad": _pad,
    "take_along_axis": _take_along_axis,
    "scatter_add": lambda v, g, i: b.take_along_axis(g, v.inputs[1], v.attrs["axis"]),
    "take": lambda v, g, i: b.index_add(g, v.inputs[1], v.attrs["axis"], v.inputs[0].shape[v.attrs["axis"]]),
    "index_add": lambda v, g, i: b.take(g, v.inputs[1], v.attrs["axis"]),
    "windows": lambda v, g, i: b.fold(g, v.inputs[0].shape[v.inputs[0].ndim - len(v.attrs["window"]):],
                                      **window_attrs(v)),
    "fold": lambda v, g, i: b.windows(g, **window_attrs(v)),
}
