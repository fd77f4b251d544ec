"""The text form of the IR, printed: ``to_text`` (one value a line, readable like a jaxpr;
``text.from_text`` parses it back exactly), and the formatting of types, scalars, arrays and
value lines that repr, DOT and JSON share. It needs only the op table, so ``Graph`` and
``Value`` print themselves without importing the parser."""

import numpy as np

from . import dtypes as dt
from .ops import ARGUMENTS, OPS

def format_type(shape, dtype) -> str:
    return f"{dt.SHORT[dtype]}[{','.join(map(str, shape))}]"


def format_scalar(x, dtype: str) -> str:
    if dtype == "bool":
        return "true" if x else "false"
    if dtype in dt.INTS:
        return str(int(x))
    return str(np.float32(x)) if dtype == "float32" else repr(float(x))


def format_array(a: np.ndarray, dtype: str) -> str:
    if a.ndim == 0:
        return format_scalar(a[()], dtype)
    return "[" + ",".join(format_array(row, dtype) for row in a) + "]"


def _format_attr(kind: str, value) -> str:
    if kind == "ints":
        return "[" + ",".join(map(str, value)) + "]"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "dtype":
        return dt.SHORT[value]
    return str(value)


def format_value(v) -> str:
    """The line of value ``v``: ``%5:f32[64,100] = sigmoid %4``."""
    head = f"%{v.id}:{format_type(v.shape, v.dtype)} = {v.op}"
    if v.op in ARGUMENTS:
        return f"{head} {v.attrs['name']}"
    if v.op == "const":
        return f"{head} {format_array(v.attrs['value'], v.dtype)}"
    if v.attrs:
        kinds = OPS[v.op].attrs
        head += "[" + ", ".join(f"{k}={_format_attr(kinds[k], a)}" for k, a in v.attrs.items()) + "]"
    return " ".join([head] + [f"%{i.id}" for i in v.inputs])


def to_text(graph, notes=None) -> str:
    """The text form; ``notes`` (value id -> str) adds a ``# note`` to those lines."""
    notes = notes or {}
    lines = [f"graph {graph.name} {{"]
    lines += [f"  {format_value(v)}" + (f"  # {notes[v.id]}" if v.id in notes else "") for v in graph.nodes]
    lines += [f"  output {name} = %{v.id}" for name, v in graph.outputs.items()]
    return "\n".join(lines + ["}"]) + "\n"
