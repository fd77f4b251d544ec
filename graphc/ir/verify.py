"""The verifier: is a graph well formed?

Graphs made with the builder are well formed by construction; the verifier guards the rest:
graphs edited by hand or by a pass with a bug. It checks that every value belongs to its graph
at its position, uses a known op with valid attributes, uses only earlier values of the same
graph (so no cycles and nothing dangling), and has the shape and dtype its op's rule gives;
that names are valid and unique; and that outputs are values of the graph. Faults are a
GraphError naming the node, except a value too big for any machine (``shapes.check_type``): a
ShapeError naming it.
"""

import networkx as nx

from ..errors import GraphcError, GraphError
from . import dtypes as dt
from .graph import Value
from .names import check_name
from .ops import OPS, check_attrs
from .shapes import check_type


def verify(graph) -> None:
    check_name(graph.name, "graph name")
    names = {}
    for position, v in enumerate(graph.nodes):
        if not (isinstance(v, Value) and v.graph is graph and v.id == position):
            raise GraphError(f"{_describe(v)} stands at position {position} of graph {graph.name!r} "
                             f"but belongs elsewhere")
        where = f"%{v.id} ({v.op})"
        if not isinstance(v.inputs, tuple):
            raise GraphError(f"{where}: operands must be a tuple, got {type(v.inputs).__name__}")
        if v.op not in OPS:
            raise GraphError(f"{where}: unknown op {v.op!r}")
        opdef = OPS[v.op]
        for i in v.inputs:
            if not _is_value_of(graph, i):
                raise GraphError(f"{where}: operand {_describe(i)} is dangling (not a value of graph {graph.name!r})")
            if i.id >= v.id:
                raise GraphError(f"{where}: {_order_fault(graph)}")
        fault = opdef.arity_fault(len(v.inputs))
        if fault:
            raise GraphError(f"{where}: {fault}")
        if v.dtype in dt.DTYPES:  # (another dtype is the fault below)
            check_type(v.shape, v.dtype, where)
        try:
            t = opdef.infer(tuple(i.type for i in v.inputs), check_attrs(opdef, v.attrs))
        except GraphcError as e:
            raise GraphError(f"{where}: {e}") from None
        if t != v.type:
            raise GraphError(f"{where}: recorded as {v.dtype}{list(v.shape)} but its rule gives {t.dtype}{list(t.shape)}")
        if v.name is not None:
            if v.name in names:
                raise GraphError(f"{where}: duplicate name {v.name!r} (also %{names[v.name].id})")
            names[v.name] = v
    table = graph.arguments
    if names.keys() != table.keys() or any(table[n] is not v for n, v in names.items()):
        raise GraphError(f"graph {graph.name!r}: its input/param table does not match its nodes")
    for name, v in graph.outputs.items():
        check_name(name, "output")
        if not _is_value_of(graph, v):
            raise GraphError(f"output {name!r}: {_describe(v)} is not a value of graph {graph.name!r}")


def _is_value_of(graph, v) -> bool:
    return (isinstance(v, Value) and v.graph is graph and isinstance(v.id, int)
            and 0 <= v.id < len(graph.nodes) and graph.nodes[v.id] is v)


def _describe(v) -> str:
    return f"%{v.id}" if isinstance(v, Value) else f"{type(v).__name__} {v!r}"


def _order_fault(graph) -> str:
    try:
        cycle = nx.find_cycle(graph.to_networkx())
    except nx.NetworkXNoCycle:
        return "uses a value defined after it (nodes out of topological order)"
    return "cycle " + " -> ".join(f"%{u}" for u, _ in cycle) + f" -> %{cycle[0][0]}"
