"""Fan-out adds: a value's cotangent is the sum of what its users sent it.

A slice's cotangent is a zero pad of the slice's own cotangent to the full shape. Summing the
pads of ``x[0], x[1], ..., x[T-1]`` costs T full-size buffers, and a fused T-way add keeps all
of them alive at once (O(T^2) memory for an O(T) value). Zero pads that cover disjoint ranges
of one axis add up to the concatenation of their pieces, with zeros in the gaps: one buffer
the size of the value. Overlapping pads (sliding windows) go into as few such chains as
their overlap allows, and the chains are summed.

The same holds for a weight used at every step: its cotangent is a sum of T matmuls
``a_t @ b_t``, which is one matmul of the concatenations ``[a_0 ... a_T] @ [b_0; ...; b_T]``
(one BLAS call, the operands' bytes instead of T results'), taken when it stores fewer bytes.
"""

import functools
import operator

from ...ir import build as b
from .vjp import swap_last


def _padded_axis(c) -> int | None:
    """The one axis along which zero pad ``c`` pads (no interior padding), else None."""
    if c.op != "pad" or any(c.attrs["interior"]):
        return None
    axes = [a for a, (lo, hi) in enumerate(zip(c.attrs["low"], c.attrs["high"])) if lo or hi]
    return axes[0] if len(axes) == 1 else None


def _chains(pads: list, axis: int) -> list[list]:
    """``(position, pad)`` pairs along ``axis`` split into chains of disjoint ranges, each in
    increasing order (interval partitioning: each pad joins the first chain it fits after)."""
    chains, ends = [], []
    for k, p in sorted(pads, key=lambda kp: kp[1].attrs["low"][axis]):
        low = p.attrs["low"][axis]
        at = next((c for c, end in enumerate(ends) if end <= low), None)
        if at is None:
            chains.append([])
            ends.append(0)
            at = len(chains) - 1
        chains[at].append((k, p))
        ends[at] = low + p.inputs[0].shape[axis]
    return chains


def _tile(chain: list, axis: int):
    """The sum of disjoint zero pads ``chain`` (increasing along ``axis``): one concat of their
    pieces and the zeros between them, padded to the full extent."""
    if len(chain) == 1:
        return chain[0]
    full = chain[0].shape
    pieces, at = [], chain[0].attrs["low"][axis]
    for p in chain:
        low, piece = p.attrs["low"][axis], p.inputs[0]
        if low > at:
            gap = piece.shape[:axis] + (low - at,) + piece.shape[axis + 1:]
            pieces.append(b.broadcast_to(piece.graph.const(0, piece.dtype), gap))
        pieces.append(piece)
        at = low + piece.shape[axis]
    first = chain[0].attrs["low"][axis]
    joined = b.concat(pieces, axis)
    if first == 0 and at == full[axis]:
        return joined
    low, high = [0] * len(full), [0] * len(full)
    low[axis], high[axis] = first, full[axis] - at
    return b.pad(joined, low, high)


def _unswapped(x):
    """``y`` where ``x`` is ``swap_last(y)``, else None."""
    n = x.ndim
    if x.op == "transpose" and tuple(x.attrs["perm"]) == tuple(range(n - 2)) + (n - 1, n - 2):
        return x.inputs[0]
    return None


def _concat_last(xs):
    """``concat(xs, -1)``, taken before the transpose where every x is one (a copy of rows)."""
    ys = [_unswapped(x) for x in xs]
    if all(y is not None for y in ys):
        return swap_last(b.concat(ys, -2))
    return b.concat(xs, -1)


def _join_matmuls(terms: dict) -> None:
    """Replace matmul terms whose sum is one matmul of concatenated operands by that matmul,
    where the concatenations hold fewer bytes than the terms (``terms``: position -> value)."""
    groups: dict = {}
    for k, t in terms.items():
        if t.op == "matmul":
            groups.setdefault(t.inputs[0].shape[:-1], []).append(k)
    for at in groups.values():
        ms = [terms[k] for k in at]
        operands = sum(x.size for m in ms for x in m.inputs)
        if len(ms) > 1 and operands <= len(ms) * ms[0].size:
            for k in at[1:]:
                del terms[k]
            terms[at[0]] = b.matmul(_concat_last([m.inputs[0] for m in ms]),
                                    b.concat([m.inputs[1] for m in ms], -2))


def total(contributions: list):
    """The sum of ``contributions`` (same shape and dtype), disjoint zero pads joined first;
    terms are added in the order their first contribution arrived."""
    by_axis: dict[int, list] = {}
    for k, c in enumerate(contributions):
        axis = _padded_axis(c)
        if axis is not None:
            by_axis.setdefault(axis, []).append((k, c))
    terms = dict(enumerate(contributions))  # a chain's term stands at its earliest member
    for axis, pads in by_axis.items():
        for chain in _chains(pads, axis):
            at = sorted(k for k, _ in chain)
            for k in at[1:]:
                del terms[k]
            terms[at[0]] = _tile([p for _, p in chain], axis)
    _join_matmuls(terms)
    return functools.reduce(operator.add, [terms[k] for k in sorted(terms)])
