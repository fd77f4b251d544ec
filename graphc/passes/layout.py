"""Layout: a reshape that cannot be a view reads a copy the plan knows about.

numpy reshapes a strided view (a transpose, a slice with steps, sliding windows) by copying it
into a fresh array, outside the arena and unseen by the memory plan. This pass puts an
explicit ``copy`` under each such reshape: an elementwise op, so a loop kernel writes the
copy into a planned buffer, reading its operand through the views by index arithmetic and
fused with its neighbours where fusion allows. Buffers are laid out in C order, so whether a
reshape can be a view is known here (``ops.view_strides``); an argument the caller passes in
another layout is still reshaped by numpy at run time.
"""

from ..ir.graph import Graph
from ..ir.ops import reshaped_strides, view_strides


def _copies(v) -> bool:
    x = v.inputs[0]
    strides = view_strides(x)
    return strides is None or reshaped_strides(x.shape, strides, v.shape) is None


def materialize(graph) -> Graph:
    """``graph`` with a ``copy`` under every reshape that numpy would copy (the graph itself
    when there is none)."""
    if not any(v.op == "reshape" and _copies(v) for v in graph.nodes):
        return graph
    new, twin = Graph(graph.name), {}
    for v in graph.nodes:
        inputs = [twin[i.id] for i in v.inputs]
        if v.op == "reshape" and _copies(v):
            inputs = [new.add_node("copy", inputs, {})]
        twin[v.id] = new.add_node(v.op, inputs, dict(v.attrs))
    for name, v in graph.outputs.items():
        new.output(name, twin[v.id])
    return new
