"""Local derivatives of elementwise ops, shared by the reverse (VJP) and forward (JVP) rules.

``PARTIALS[op](v, i)`` is the derivative of value ``v`` with respect to its operand ``i``, as an
IR value of ``v``'s shape, or the Python number 1 or -1 for linear ops (so no ``mul`` by one
is emitted). The VJP of an elementwise op is ``g * partial``; its JVP is
``sum_i t_i * partial_i``. Every partial is built from differentiable primitives, so the
rules can be differentiated again.

Conventions at kinks: relu'(0) = 0, abs'(0) = 0 (via sign); maximum/minimum send the
gradient to the first operand on ties.
"""

import math

from ...ir import build as b
from ...ir.graph import Value


def _x(v):
    return v.inputs[0]


def _indicator(cond, like):
    """1 where ``cond`` holds, else 0, in ``like``'s dtype (a cast from bool has no gradient)."""
    return b.cast(cond, like.dtype)


def _pow_partial(v, i):
    x, y = v.inputs
    return y * b.pow(x, y - 1) if i == 0 else b.log(x) * v


def _choose(test_first):
    """maximum/minimum: the first operand wins ties."""
    def partial(v, i):
        a, c = v.inputs
        first = _indicator(test_first(a, c), v)
        return first if i == 0 else 1 - first

    return partial


PARTIALS = {
    "neg": lambda v, i: -1,
    "copy": lambda v, i: 1,
    "exp": lambda v, i: v,
    "log": lambda v, i: b.reciprocal(_x(v)),
    "sqrt": lambda v, i: 0.5 / v,
    "rsqrt": lambda v, i: -0.5 * v * v * v,
    "abs": lambda v, i: b.sign(_x(v)),
    "tanh": lambda v, i: 1 - b.square(v),
    "sigmoid": lambda v, i: v * (1 - v),
    "relu": lambda v, i: _indicator(b.gt(_x(v), 0), v),
    "square": lambda v, i: 2 * _x(v),
    "reciprocal": lambda v, i: -b.square(v),
    "sin": lambda v, i: b.cos(_x(v)),
    "cos": lambda v, i: -b.sin(_x(v)),
    "log1p": lambda v, i: b.reciprocal(1 + _x(v)),
    "expm1": lambda v, i: v + 1,
    "softplus": lambda v, i: b.sigmoid(_x(v)),
    "erf": lambda v, i: (2 / math.sqrt(math.pi)) * b.exp(-b.square(_x(v))),
    "add": lambda v, i: 1,
    "sub": lambda v, i: 1 if i == 0 else -1,
    "mul": lambda v, i: v.inputs[1 - i],
    "div": lambda v, i: b.reciprocal(v.inputs[1]) if i == 0 else -v / v.inputs[1],
    "pow": _pow_partial,
    "maximum": _choose(b.ge),
    "minimum": _choose(b.le),
}


def scale(t, partial):
    """``t * partial``, without multiplying by a literal 1 or -1."""
    if isinstance(partial, Value):
        return t * partial
    return t if partial == 1 else -t
