"""The five dtypes of the IR, their short names, and the promotion lattice.

Values carry a canonical dtype name ("float32", ...). The text form uses short codes
("f32", ...). Promotion is a simple chain bool < int32 < int64 < float32 < float64, so mixing
two values gives the larger one (as JAX does); Python scalars are weakly typed and take the
dtype of the value they meet.
"""

import numpy as np

from ..errors import DTypeError

DTYPES = ("bool", "int32", "int64", "float32", "float64")  # promotion order
SHORT = {"bool": "bool", "int32": "i32", "int64": "i64", "float32": "f32", "float64": "f64"}
FROM_SHORT = {code: name for name, code in SHORT.items()}
FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
DEFAULT_FLOAT = "float32"


def canonical(dtype) -> str:
    """Accept "float32", "f32", np.float32, np.dtype("float32"); return "float32"."""
    if isinstance(dtype, str):
        if dtype in SHORT:
            return dtype
        if dtype in FROM_SHORT:
            return FROM_SHORT[dtype]
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
        if name in SHORT:
            return name
    raise DTypeError(f"unsupported dtype {dtype!r}; graphc supports {', '.join(DTYPES)}")


def promote(*dtypes: str) -> str:
    return max(dtypes, key=DTYPES.index)


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def itemsize(dtype: str) -> int:
    return np.dtype(dtype).itemsize


def scalar_dtype(x) -> str:
    """The dtype a Python scalar wants on its own: bool, int64 or the default float."""
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, (int, np.integer)):
        return "int64"
    return DEFAULT_FLOAT


def weak_dtype(x, other: str) -> str:
    """The dtype of Python scalar ``x`` meeting a value of dtype ``other``.

    The scalar adopts ``other`` unless it would lose its kind: a float scalar meeting an
    integer or bool value becomes the default float (and the value is promoted to it).
    """
    own = scalar_dtype(x)
    if own == DEFAULT_FLOAT and not is_float(other):
        return DEFAULT_FLOAT
    if own == "int64" and other == "bool":
        return "int64"
    return other
