"""Numeric literals in generated kernel source: the only place a value from a graph becomes
source text, validated to digits, signs, '.', 'e' and names the compiler makes."""

import math

import numpy as np

from ..ir import dtypes as dt

CTOR = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32", "int64": "np.int64",
         "bool": "np.bool_"}


def literal(value, dtype: str) -> str:
    """A validated numeric literal of ``dtype``: only digits, signs, '.', 'e' and our names."""
    value = np.asarray(value, dtype=dtype)[()]
    if dtype == "bool":
        return "True" if value else "False"
    if dtype in dt.INTS:
        # numba reads -9223372036854775808 as minus an unsigned literal: spell the minimum out
        text = f"({int(value) + 1} - 1)" if value == np.iinfo(dtype).min else str(int(value))
    elif math.isnan(value):
        text = "np.nan"
    elif math.isinf(value):
        text = "np.inf" if value > 0 else "-np.inf"
    else:
        text = repr(float(value))
    return f"{CTOR[dtype]}({text})"
