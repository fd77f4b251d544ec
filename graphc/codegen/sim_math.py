"""``math`` for kernels run by numba's CUDA simulator, which executes them as Python.

Python's ``math`` raises where a GPU returns inf or NaN (``log(0)``, ``exp(1000)``); numpy's
ufuncs on scalars return what the device returns, in the operand's precision. Kernels import
this module as ``math`` only under the simulator (see ``numba_cuda.PRELUDE``).
"""

import math as _math

import numpy as _np


def _quiet(ufunc):
    def f(x):
        with _np.errstate(all="ignore"):
            return ufunc(x)
    return f


exp, log, sqrt, tanh, sin, cos, log1p, expm1 = map(_quiet, (_np.exp, _np.log, _np.sqrt, _np.tanh, _np.sin, _np.cos,
                                                          _np.log1p, _np.expm1))


def erf(x):
    return type(x)(_math.erf(x)) if isinstance(x, _np.floating) else _math.erf(x)
