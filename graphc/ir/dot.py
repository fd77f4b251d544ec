"""Graphviz DOT export: ops with their shapes; inputs, params, constants and outputs drawn apart."""

from ..errors import GraphError
from .ops import ARGUMENTS
from .printing import format_array, format_type

_STYLE = {
    "input": 'shape=box, style="filled,rounded", fillcolor="#cfe2ff"',
    "param": 'shape=box, style="filled,rounded", fillcolor="#ffe3b3"',
    "const": 'shape=box, style="filled,dashed", fillcolor="#f2f2f2"',
    "op": 'shape=ellipse, style=filled, fillcolor="#ffffff"',
    "output": 'shape=doubleoctagon, style=filled, fillcolor="#d3f5d3"',
}
_SHOWN_CONST_SIZE = 4  # constants up to this many elements show their value


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(v) -> str:
    t = format_type(v.shape, v.dtype)
    if v.op in ARGUMENTS:
        return f"{v.op} {v.name}\n{t}"
    if v.op == "const":
        shown = format_array(v.attrs["value"], v.dtype) if v.size <= _SHOWN_CONST_SIZE else "..."
        return f"const {shown}\n{t}"
    return f"%{v.id} {v.op}\n{t}"


def to_dot(graph, clusters=None) -> str:
    """The DOT source of ``graph`` (render with ``dot -Tsvg``). ``clusters`` ({name: (label,
    value ids)}, names identifiers; e.g. a compiled plan's kernels: ``fn.to_dot()``) draws a box
    around each set of values."""
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    for v in graph.nodes:
        style = _STYLE.get(v.op, _STYLE["op"])
        lines.append(f"  v{v.id} [label={_quote(_label(v))}, {style}];")
        lines += [f"  v{i.id} -> v{v.id};" for i in v.inputs]
    for name, (label, ids) in (clusters or {}).items():
        if not name.isidentifier():
            raise GraphError(f"to_dot: cluster name {name!r} is not an identifier")
        members = " ".join(f"v{i};" for i in ids)
        lines.append(f"  subgraph cluster_{name} {{ label={_quote(label)}; "
                     f'style="rounded,dashed"; color="#7a7a7a"; {members} }}')
    for name, v in graph.outputs.items():
        lines.append(f"  out_{name} [label={_quote('output ' + name)}, {_STYLE['output']}];")
        lines.append(f"  v{v.id} -> out_{name};")
    return "\n".join(lines + ["}"]) + "\n"
