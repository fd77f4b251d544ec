"""The numpy reference interpreter: the oracle every compiled result is tested against.

It runs each node's reference semantics from the op table in graph order. It is plain rather
than fast: float reductions and matmuls accumulate in float64, floating-point exceptions follow
IEEE (no warnings), inputs are bound as read-only views (an op that tried to write one would
fail loudly) and outputs are fresh arrays that alias nothing the caller holds.
"""

from collections.abc import Mapping

import numpy as np

from ..errors import ArgumentError, DataError, DTypeError, GraphcError, ResourceError, ShapeError
from .ops import OPS

# which kinds of Python/array data may feed an input of each dtype kind without a numpy dtype
_COMPATIBLE_KINDS = {"b": "b", "i": "bi", "f": "bif"}


def bind_arguments(graph, arrays: dict, convert=None) -> dict:
    """Check call arguments against the graph's inputs and params; return ``{value: array}``.

    numpy arrays (and anything with ``__array__``) must have the declared dtype, except that an
    integer array may feed another integer dtype when every value fits (scikit-learn's labels
    are int64): it is converted, as a copy. Python scalars and lists are converted when no
    information is lost in kind (an int list may feed a float input, not the other way).
    Shapes must match exactly. ``convert(name, value, arg)`` replaces ``convert_argument`` (a
    device runtime checks device arrays itself).
    """
    if not isinstance(arrays, Mapping):
        raise ArgumentError(f"graph {graph.name!r}: expected the arguments as a dict of name -> array, got "
                            f"{type(arrays).__name__}; it takes {', '.join(graph.arguments) or 'nothing'}")
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


def by_name_only(graph, args: tuple, call: str) -> None:
    """Refuse positional arguments: a graph's arguments have names, and an order (inputs and
    params interleaved as they were made) that is easy to get wrong. ``call`` is the call as
    the caller spells it, with ``{}`` where the arguments go."""
    if args:
        spelled = ", ".join(f"{n}=..." for n in graph.arguments)
        raise ArgumentError(f"graph {graph.name!r} takes its arguments by name, got {len(args)} positional: "
                            f"call {call.format(spelled)}")


def _describe(v) -> str:
    return f"{v.dtype}{list(v.shape)}"


def convert_argument(name: str, v, arg) -> np.ndarray:
    typed = isinstance(arg, (np.ndarray, np.generic)) or hasattr(arg, "__array__")
    try:
        a = np.asarray(arg)
    except Exception as e:  # noqa: BLE001 - any failure to convert is the caller's input fault
        raise DTypeError(f"{v.op} {name!r}: cannot convert {type(arg).__name__} to an array: {e}") from None
    want = np.dtype(v.dtype)
    if typed:
        if a.dtype != want and not (a.dtype.kind in "iu" and want.kind == "i"):
            raise DTypeError(f"{v.op} {name!r}: expected dtype {v.dtype}, got {a.dtype}; "
                             f"convert it with .astype(np.{v.dtype}) if that is what you mean")
    elif a.dtype.kind not in _COMPATIBLE_KINDS[want.kind]:
        raise DTypeError(f"{v.op} {name!r}: expected {v.dtype} data, got {a.dtype} ({type(arg).__name__})")
    if a.dtype != want:
        a = _lossless(name, v, a)
    if a.shape != v.shape:
        raise ShapeError(f"{v.op} {name!r}: expected shape {v.shape}, got {a.shape}")
    view = a.view()
    view.flags.writeable = False
    return view


def _lossless(name: str, v, a: np.ndarray) -> np.ndarray:
    """``a`` as ``v.dtype`` (a copy), refusing integers that do not fit and finite floats that
    overflow: a wrapped label or an infinite weight would be a silent wrong answer."""
    if a.dtype.kind in "iu" and np.dtype(v.dtype).kind == "i" and a.size:
        info = np.iinfo(v.dtype)
        lo, hi = int(a.min()), int(a.max())
        if lo < info.min or hi > info.max:
            raise DTypeError(f"{v.op} {name!r}: {a.dtype} value {lo if lo < info.min else hi} is out of range "
                             f"for {v.dtype} [{info.min}, {info.max}]")
    with np.errstate(all="ignore"):
        out = a.astype(v.dtype)
    if out.dtype.kind == "f" and np.any(np.isfinite(a) & ~np.isfinite(out)):
        raise DTypeError(f"{v.op} {name!r}: values overflow {v.dtype}")
    return out


def evaluate(graph, /, *args, **arrays) -> dict[str, np.ndarray]:
    """Run ``graph`` on numpy arrays, passed by name; return ``{output_name: ndarray}``."""
    by_name_only(graph, args, "gc.evaluate(graph, {})")
    env = bind_arguments(graph, arrays)
    with np.errstate(all="ignore"):
        for v in graph.nodes:
            if v.op == "const":
                env[v] = v.attrs["value"]
            elif v not in env:
                env[v] = _run(v, [env[i] for i in v.inputs])
    try:
        return {name: np.array(env[v], copy=True, order="C") for name, v in graph.outputs.items()}
    except MemoryError as e:  # an output that is a broadcast view of something small, say
        raise ResourceError(f"graph {graph.name!r}: out of memory for its outputs: {e}") from None


def _run(v, args) -> np.ndarray:
    try:
        out = np.asarray(OPS[v.op].reference(v.attrs, *args))
    except GraphcError as e:
        raise type(e)(f"%{v.id} ({v.op}): {e}") from None
    except MemoryError as e:  # a size the shape rules allow, but not this machine
        raise ResourceError(f"%{v.id} ({v.op}): out of memory: {e}") from None
    except (ValueError, ArithmeticError, IndexError) as e:  # numpy refusing the data
        raise DataError(f"%{v.id} ({v.op}): {e}") from None
    if out.shape != v.shape or out.dtype != np.dtype(v.dtype):
        raise AssertionError(f"internal: %{v.id} ({v.op}) gave {out.dtype}{list(out.shape)}, "
                             f"its rule says {v.dtype}{list(v.shape)}")
    return out


