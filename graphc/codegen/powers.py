"""Strength reduction of ``pow`` by a constant exponent, for both code generators.

``x ** 3`` lowered as a call to ``pow`` is a scalar library call that keeps a whole fused loop
from vectorizing; users write ``x**2``, ``x**3``, ``x**0.5``, ``x**-1`` all the time, and
gradient rules make more (pow's own ``y * x**(y - 1)`` turns ``x**-0.5`` into ``x**-1.5``).
Whatever built the graph (the builder, a loaded file, autodiff), a ``pow`` whose exponent is a
known constant (a splat, see ``simplify.splat``) is lowered here to arithmetic that vectorizes,
with the results of IEEE pow:

* 0 -> 1 (also for NaN), 1 -> x, 2 -> x * x, -1 -> 1 / x: exact or correctly rounded;
* integers n, |n| <= ``MAX_EXPONENT``: binary powering (repeated squaring), of the reciprocal
  for negative n (so that x**-n has no overflowing x**n on the way); halves n + 1/2:
  x**n * sqrt(x), with pow's results at +-0 and -inf (where sqrt has -0 and NaN).

float32 powers are computed in float64 and rounded once: correctly rounded but within 2^-48
of a tie. float64 powers on the CPU carry each rounding error (exact by fma: ``_dd_mul``,
``_dd_inverse``, ``_dd_sqrt`` in its prelude) to first order, so they are within an ulp of
the exact power, as libm's pow is; CUDA kernels round each product (below ``|n| + 1`` ulp, as
PyTorch's and XLA's integer powers). Integers wrap as numpy's do; an integer to a negative
power stays the checked ``pow``.

Any other exponent stays a ``pow`` call; the compile report names kernels that keep one.
"""

import math

from ..ir import dtypes as dt
from ..passes.simplify import splat
from .literals import literal

MAX_EXPONENT = 16  # |n| above this keeps the pow call (more multiplications, more rounding)
_EXACT = {0: "{one}", 1: "{0}", 2: "{0} * {0}", -1: "{one} / {0}"}


def _chain(x: str, n: int, mul) -> str:
    """``x ** n`` (n >= 1) by repeated squaring, as one expression: each square repeats its
    operand's text, which LLVM computes once."""
    if n == 1:
        return x
    half = _chain(x, n // 2, mul)
    square = mul(half, half)
    return mul(square, x) if n % 2 else square


def _plain(a: str, b: str) -> str:
    return f"({a} * {b})"


def _compensated(a: str, b: str) -> str:
    return f"_dd_mul({a}, {b})"


def power_template(v, fma: bool) -> str | None:
    """The template (over ``{0}``, the base) computing ``pow`` node ``v``, when its exponent is
    a constant worth reducing; else None. ``fma``: the target has the ``_dd`` helpers (CPU)."""
    c = splat(v.inputs[1])
    if c is None:
        return None
    if v.dtype in dt.INTS:
        n = int(c)
        return None if not 0 <= n <= MAX_EXPONENT else ("{one}" if n == 0 else _chain("{u}({0})", n, _plain))
    c = float(c)
    if not (2 * c).is_integer() or abs(c) > MAX_EXPONENT + 0.5:
        return None
    if c in _EXACT:
        return _EXACT[c]
    n, half = int(abs(c)), not c.is_integer()
    # a negative power inverts first: x ** -n overflowing where its inverse does not underflow
    if v.dtype == "float64" and fma:
        base, root = "({0}, 0.0)", "_dd_sqrt({0})"
        base, root = (base, root) if c > 0 else (f"_dd_inverse({base})", f"_dd_inverse({root})")
        mul, done = _compensated, "_dd_value({})"
    else:
        x = "np.float64({0})" if v.dtype == "float32" else "{0}"
        base, root = x, f"math.sqrt({x})"
        base, root = (base, root) if c > 0 else (f"(1.0 / {base})", f"(1.0 / {root})")
        mul, done = _plain, "{}"
    factors = ([_chain(base, n, mul)] if n else []) + ([root] if half else [])
    power = done.format(mul(*factors) if len(factors) == 2 else factors[0])
    if not half:
        return power
    # pow(+-0, c) is +0 for c > 0 and +inf for c < 0; pow(-inf, c) is +inf and +0
    inf, zero = literal(math.inf, v.dtype), literal(0, v.dtype)
    at_zero, at_minus_inf = (zero, inf) if c > 0 else (inf, zero)
    return f"{at_zero} if {{0}} == {zero} else ({at_minus_inf} if {{0}} == -{inf} else {power})"
