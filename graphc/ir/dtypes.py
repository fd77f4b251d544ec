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


def range_fault(value, dtype: str) -> str:
    """Why ``value`` is no number of ``dtype``: the range it misses."""
    if dtype in INTS:
        info = np.iinfo(dtype)
        return f"{value} is out of range for {dtype} [{info.min}, {info.max}]"
    return (f"{value!r} is out of range for {dtype} (its finite values lie within +-{str(np.finfo(dtype).max)}; "
            f"write inf for an infinity)")


def overflow_fault(source, array: np.ndarray) -> str | None:
    """What is wrong when ``array``, ``source`` converted to a float dtype, made a finite number
    infinite (1e300 as float32); None when nothing overflowed. Infinities written as such stay:
    only finite numbers are checked."""
    if array.dtype.kind != "f":
        return None
    with np.errstate(over="ignore"):
        src = np.asarray(source, dtype=np.float64)
    bad = np.isfinite(src) & ~np.isfinite(array)
    return range_fault(float(src[bad].flat[0]), array.dtype.name) if bad.any() else None
