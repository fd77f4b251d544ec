"""The numpy reference interpreter: the oracle every compiled result is tested against.

It runs each node's reference semantics from the op table in graph order. It is plain rather
than fast: float reductions and matmuls accumulate in float64, floating-point exceptions follow
IEEE (no warnings), inputs are bound as read-only views (an op that tried to write one would
fail loudly) and outputs are fresh arrays that alias nothing the caller holds.
"""

import numpy as np

from ..errors import ArgumentError, DataError, DTypeError, GraphcError, ShapeError
from .ops import OPS

# which kinds of Python/array data may feed an input of each dtype kind without a numpy dtype
_COMPATIBLE_KINDS = {"b": "b", "i": "bi", "f": "bif"}


def bind_arguments(graph, arrays: dict, convert=None) -> dict:
    """Check call arguments against the graph's inputs and params; return ``{value: array}``.

    numpy arrays (and anything with ``__array__``) must have exactly the declared dtype;
    Python scalars and lists are converted when no information is lost in kind (an int list
    may feed a float input, not the other way). Shapes must match exactly. ``convert(name,
    value, arg)`` replaces ``convert_argument`` (a device runtime checks device arrays itself).
    """
    convert = convert or convert_argument
    expected = graph.arguments
    missing = [n for n in expected if n not in arrays]
    extra = [n for n in arrays if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"{n} ({_describe(expected[n])})" for n in missing))
        if extra:
            parts.append("unexpected " + ", ".join(extra))
        raise ArgumentError(f"graph {graph.name!r}: {'; '.join(parts)}; it takes {', '.join(expected) or 'nothing'}")
    bound = {}
    for name, v in expected.items():
        bound[v] = convert(name, v, arrays[name])
    return bound


def _describe(v) -> str:
    return f"{v.dtype}{list(v.shape)}"


def convert_argument(name: str, v, arg) -> np.ndarray:
    typed = isinstance(arg, (np.ndarray, np.generic)) or hasattr(arg, "__array__")
    try:
        a = np.asarray(arg)
    except Exception as e:  # noqa: BLE001 - any failure to convert is the caller's input fault
        raise DTypeError(f"{v.op} {name!r}: cannot convert {type(arg).__name__} to an array: {e}") from None
    if typed:
        if a.dtype != np.dtype(v.dtype):
            raise DTypeError(f"{v.op} {name!r}: expected dtype {v.dtype}, got {a.dtype}")
    else:
        if a.dtype.kind not in _COMPATIBLE_KINDS[np.dtype(v.dtype).kind]:
            raise DTypeError(f"{v.op} {name!r}: expected {v.dtype} data, got {a.dtype} ({type(arg).__name__})")
        a = _lossless(name, v, a)
    if a.shape != v.shape:
        raise ShapeError(f"{v.op} {name!r}: expected shape {v.shape}, got {a.shape}")
    view = a.view()
    view.flags.writeable = False
    return view


def _lossless(name: str, v, a: np.ndarray) -> np.ndarray:
    """``a`` as ``v.dtype``, refusing integers that do not fit and finite floats that overflow."""
    with np.errstate(all="ignore"):
        out = a.astype(v.dtype)
    if a.dtype.kind in "iu" and out.dtype.kind == "i" and not np.array_equal(out, a):
        raise DTypeError(f"{v.op} {name!r}: values out of range for {v.dtype}")
    if out.dtype.kind == "f" and np.any(np.isfinite(a) & ~np.isfinite(out)):
        raise DTypeError(f"{v.op} {name!r}: values overflow {v.dtype}")
    return out


def evaluate(graph, /, **arrays) -> dict[str, np.ndarray]:
    """Run ``graph`` on numpy arrays; return ``{output_name: ndarray}``."""
    env = bind_arguments(graph, arrays)
    with np.errstate(all="ignore"):
        for v in graph.nodes:
            if v.op == "const":
                env[v] = v.attrs["value"]
            elif v not in env:
                env[v] = _run(v, [env[i] for i in v.inputs])
    return {name: np.array(env[v], copy=True, order="C") for name, v in graph.outputs.items()}


def _run(v, args) -> np.ndarray:
    try:
        out = np.asarray(OPS[v.op].reference(v.attrs, *args))
    except GraphcError as e:
        raise type(e)(f"%{v.id} ({v.op}): {e}") from None
    except (ValueError, ArithmeticError, IndexError) as e:  # e.g. int ** negative int
        raise DataError(f"%{v.id} ({v.op}): {e}") from None
    if out.shape != v.shape or out.dtype != np.dtype(v.dtype):
        raise AssertionError(f"internal: %{v.id} ({v.op}) gave {out.dtype}{list(out.shape)}, "
                             f"its rule says {v.dtype}{list(v.shape)}")
    return out


