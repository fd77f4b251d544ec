"""The JSON form of the IR: versioned, exact, and loaded without trusting the file.

    {"format": "graphc-ir", "version": 1, "name": "...",
     "nodes": [{"id": 0, "op": "input", "dtype": "float32", "shape": [64, 1000],
                "inputs": [], "attrs": {"name": "x"}}, ...],
     "outputs": [{"name": "loss", "value": 11}]}

A const's ``attrs.value`` is its flat row-major data; non-finite floats are the strings "nan",
"inf", "-inf". Floats are written as the shortest decimal that reads back to the same value, so
``save``/``load`` round-trip exactly and ``to_json(from_json(s)) == s`` for what we wrote.
Loading checks every field and reports the JSON path of the first fault as a GraphError; the
file names only ops from the op table and never anything that is imported or run.
"""

import json
import math

from ..errors import GraphcError, GraphError
from . import dtypes as dt
from .assemble import OutputRecord, Record, assemble, const_array
from .names import check_name
from .ops import ARGUMENTS, OPS, TensorType
from .shapes import check_type
from .printing import format_scalar
from .text import from_text, unknown_op

FORMAT = "graphc-ir"
VERSION = 1


# ---------------------------------------------------------------- writing


def _json_scalar(x, dtype: str) -> str:
    if dt.is_float(dtype) and not math.isfinite(x):
        return json.dumps(str(float(x)))  # "nan", "inf", "-inf"
    return format_scalar(x, dtype)


def _node_json(v) -> str:
    if v.op == "const":
        data = ", ".join(_json_scalar(x, v.dtype) for x in v.attrs["value"].ravel().tolist())
        attrs = f'{{"value": [{data}]}}'
    else:
        shown = {k: a for k, a in v.attrs.items() if not (v.op in ARGUMENTS and k in ("shape", "dtype"))}
        attrs = json.dumps({k: list(a) if isinstance(a, tuple) else a for k, a in shown.items()})
    head = json.dumps({"id": v.id, "op": v.op, "dtype": v.dtype, "shape": list(v.shape),
                       "inputs": [i.id for i in v.inputs]})
    return head[:-1] + f', "attrs": {attrs}}}'


def to_json(graph) -> str:
    nodes = ",\n".join(f"  {_node_json(v)}" for v in graph.nodes)
    outputs = ",\n".join(f"  {json.dumps({'name': n, 'value': v.id})}" for n, v in graph.outputs.items())
    return (f'{{\n "format": "{FORMAT}",\n "version": {VERSION},\n "name": {json.dumps(graph.name)},\n'
            f' "nodes": [\n{nodes}\n ],\n "outputs": [\n{outputs}\n ]\n}}\n')


def save(graph, path) -> None:
    """Write ``graph`` as JSON to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_json(graph))


# ---------------------------------------------------------------- reading


def _fail(path: str, message: str):
    raise GraphError(f"{path}: {message}")


class _Object(dict):
    """A JSON object as loaded, remembering a key it had twice (json.loads keeps the last)."""

    twice = None


def _pairs(pairs) -> _Object:
    """json's ``object_pairs_hook``: the object, noting a key given twice for ``_obj`` to refuse
    with its path (here the path is unknown)."""
    obj = _Object()
    for key, value in pairs:
        if key in obj and obj.twice is None:
            obj.twice = key
        obj[key] = value
    return obj


def _number(text: str) -> float:
    """A JSON number with a fraction or exponent; one too big for a float64 (1e400) would
    silently be inf."""
    x = float(text)
    if math.isinf(x):
        raise GraphError(f"$: number {text} is out of range for float64; write \"inf\" for an infinity")
    return x


def _constant(name: str):
    """json's ``parse_constant``: Python's json reads NaN and Infinity, which JSON lacks."""
    raise GraphError(f"$: {name} is not JSON; write non-finite floats as the strings \"nan\", \"inf\", \"-inf\"")


def _obj(x, path: str, keys: set) -> dict:
    if not isinstance(x, dict):
        _fail(path, f"expected an object, got {_kind(x)}")
    if getattr(x, "twice", None) is not None:
        _fail(path, f"key {x.twice!r} is given twice")
    if set(x) != keys:
        missing, extra = sorted(keys - set(x)), sorted(set(x) - keys)
        _fail(path, "; ".join(p for p in (f"missing {missing}" if missing else "",
                                           f"unexpected {extra}" if extra else "") if p))
    return x


def _list(x, path: str) -> list:
    if not isinstance(x, list):
        _fail(path, f"expected a list, got {_kind(x)}")
    return x


def _int(x, path: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        _fail(path, f"expected an integer, got {_kind(x)}")
    return x


def _str(x, path: str) -> str:
    if not isinstance(x, str):
        _fail(path, f"expected a string, got {_kind(x)}")
    return x


def _kind(x) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(x), type(x).__name__)


def _scalar(x, path: str):
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            _fail(path, f"expected a number, got the string {x!r}")
        return float(x)
    if not isinstance(x, (bool, int, float)):
        _fail(path, f"expected a number or boolean, got {_kind(x)}")
    return x


def _attr(kind: str, x, path: str):
    if kind == "int":
        return _int(x, path)
    if kind == "bool":
        if not isinstance(x, bool):
            _fail(path, f"expected a boolean, got {_kind(x)}")
        return x
    if kind == "ints":
        return tuple(_int(a, f"{path}[{i}]") for i, a in enumerate(_list(x, path)))
    if kind == "dtype":
        if _str(x, path) not in dt.DTYPES:
            _fail(path, f"unknown dtype {x!r} (expected one of {', '.join(dt.DTYPES)})")
        return x
    return _str(x, path)  # name; checked by the graph


def _record(node, path: str) -> Record:
    node = _obj(node, path, {"id", "op", "dtype", "shape", "inputs", "attrs"})
    label = _int(node["id"], f"{path}.id")
    op = _str(node["op"], f"{path}.op")
    if op not in OPS:
        _fail(f"{path}.op", unknown_op(op))
    dtype = _str(node["dtype"], f"{path}.dtype")
    if dtype not in dt.DTYPES:
        _fail(f"{path}.dtype", f"unknown dtype {dtype!r} (expected one of {', '.join(dt.DTYPES)})")
    shape = tuple(_int(d, f"{path}.shape[{i}]") for i, d in enumerate(_list(node["shape"], f"{path}.shape")))
    try:
        t = TensorType(check_type(shape, dtype, "shape"), dtype)
    except GraphcError as e:
        _fail(f"{path}.shape", str(e))
    inputs = tuple(_int(x, f"{path}.inputs[{i}]") for i, x in enumerate(_list(node["inputs"], f"{path}.inputs")))
    schema = dict(OPS[op].attrs)
    if op in ARGUMENTS:
        del schema["shape"], schema["dtype"]
    raw = _obj(node["attrs"], f"{path}.attrs", set(schema))
    if op == "const":
        data = [_scalar(x, f"{path}.attrs.value[{i}]") for i, x in enumerate(_list(raw["value"], f"{path}.attrs.value"))]
        attrs = {"value": const_array(data, t, f"{path}.attrs.value")}
    else:
        attrs = {k: _attr(kind, raw[k], f"{path}.attrs.{k}") for k, kind in schema.items()}
        if op in ARGUMENTS:
            attrs.update(shape=t.shape, dtype=t.dtype)
    return Record(label, op, inputs, attrs, t, path)


def from_json(text) -> "object":
    """Parse the JSON form; any fault is a GraphError with the JSON path where it lies."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise GraphError(f"from_json expects str or bytes, got {type(text).__name__}")
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_float=_number, parse_constant=_constant)
    except GraphError:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise GraphError(f"$: not valid JSON: {e}") from None
    doc = _obj(doc, "$", {"format", "version", "name", "nodes", "outputs"})
    if doc["format"] != FORMAT:
        _fail("$.format", f"expected {FORMAT!r}, got {doc['format']!r}")
    if _int(doc["version"], "$.version") != VERSION:
        _fail("$.version", f"unsupported version {doc['version']}; this graphc reads version {VERSION}")
    name = _str(doc["name"], "$.name")
    try:
        check_name(name, "graph name")
    except GraphError as e:
        _fail("$.name", str(e))
    records = [_record(n, f"$.nodes[{i}]") for i, n in enumerate(_list(doc["nodes"], "$.nodes"))]
    outputs = []
    for i, o in enumerate(_list(doc["outputs"], "$.outputs")):
        o = _obj(o, f"$.outputs[{i}]", {"name", "value"})
        outputs.append(OutputRecord(_str(o["name"], f"$.outputs[{i}].name"),
                                    _int(o["value"], f"$.outputs[{i}].value"), f"$.outputs[{i}]"))
    return assemble(name, records, outputs)


def load(path):
    """Read a graph from a file: JSON as ``save`` writes it, or the text form as ``to_text``
    and ``graphc grad -o FILE.ir`` write it. A file whose first non-blank character is ``{`` or ``[``
    is JSON, anything else is text. A malformed file raises GraphError naming it and the fault."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        if data.lstrip()[:1] in (b"{", b"["):
            return from_json(data)
        return from_text(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise GraphError(f"{path}: neither a JSON nor a text IR file ({e})") from None
    except GraphError as e:
        raise GraphError(f"{path}: {e}") from None
