"""Forward-mode rules: ``JVP[op](v, tangents)`` is the tangent of value ``v`` given the tangents
of its operands (None where an operand has none: it does not depend on ``wrt``, or is not
float). At least one tangent is present. Linear ops apply themselves to the tangents.
"""

from ...ir import build as b
from .derivatives import PARTIALS, scale
from .vjp import extreme_mask, zeros_like


def _elementwise(v, ts):
    terms = [scale(t, PARTIALS[v.op](v, i)) for i, t in enumerate(ts) if t is not None]
    out = terms[0]
    for term in terms[1:]:
        out = out + term
    return out


def _filled(v, ts):
    """Tangents with zeros for the operands that have none."""
    return [zeros_like(x) if t is None else t for x, t in zip(v.inputs, ts)]


def _linear(v, ts):
    """For ops linear in their float operands: the same op applied to the tangents."""
    return v.graph.add_node(v.op, _filled(v, ts), dict(v.attrs))


def _linear_in_first(v, ts):
    """For ops linear in operand 0 whose other operands are indices or conditions."""
    return v.graph.add_node(v.op, [ts[0], *v.inputs[1:]], dict(v.attrs))


def _where(v, ts):
    _, ta, tb = _filled(v, ts)
    return b.where(v.inputs[0], ta, tb)


def _extreme(v, ts):
    return b.sum(extreme_mask(v) * ts[0], v.attrs["axes"], v.attrs["keepdims"])


def _matmul(v, ts):
    a, c = v.inputs
    ta, tc = ts
    terms = ([b.matmul(ta, c)] if ta is not None else []) + ([b.matmul(a, tc)] if tc is not None else [])
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


JVP = {
    **{op: _elementwise for op in PARTIALS},
    "where": _where,
    "cast": lambda v, ts: b.cast(ts[0], v.dtype),
    "checkpoint": lambda v, ts: ts[0],
    "sum": _linear,
    "max": _extreme,
    "min": _extreme,
    "matmul": _matmul,
    "transpose": _linear,
    "reshape": _linear,
    "broadcast_to": _linear,
    "concat": _linear,
    "slice": _linear,
    "pad": _linear,
    "take_along_axis": _linear_in_first,
    "scatter_add": _linear_in_first,
    "take": _linear_in_first,
    "index_add": _linear_in_first,
    "windows": _linear,
    "fold": _linear,
}
