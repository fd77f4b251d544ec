"""Analyses of a gradient graph that remat, the budget search, the memory plan and the
profiler share: which values are the forward, which of them the backward reads (activations),
the spine that carries the activations to the loss, and the ``checkpoint`` marks.

The *forward* of a graph is every value its loss needs (the loss: its first scalar float
output); everything else is the *backward*. An *activation* is a forward value that a
backward op reads.
"""

import networkx as nx

from ..ir.ops import SOURCES, VIEWS, base_of, flops


def forward_ids(graph) -> set:
    """Ids of the forward: the values the graph's loss needs. The loss is its first scalar float
    output in graph order: ``grad`` appends the backward after the forward, and a gradient can
    be a scalar float too (that of a scalar parameter), but never comes before the loss."""
    losses = [v for v in graph.outputs.values() if v.shape == () and v.dtype.startswith("float")]
    stack = [min(losses, key=lambda v: v.id)] if losses else []
    seen = set()
    while stack:
        v = stack.pop()
        if v.id not in seen:
            seen.add(v.id)
            stack.extend(v.inputs)
    return seen


def activation_ids(graph, forward: set) -> list:
    """Forward values (not graph arguments or constants) that backward ops read."""
    read = {i.id for v in graph.nodes if v.id not in forward for i in v.inputs}
    return sorted(i for i in read if i in forward and graph.nodes[i].op not in SOURCES)


def forward_flops(graph, forward: set) -> int:
    return sum(flops(graph.nodes[i]) for i in forward)


def marks(graph) -> dict:
    """value id -> True (always keep) / False (never keep), from ``checkpoint`` ops."""
    return {base_of(v.inputs[0]).id: v.attrs["save"] for v in graph.nodes if v.op == "checkpoint"}


def spine(graph, forward: set) -> list:
    """The forward values that carry the activations from a data input to the loss, in graph
    order: for some data input, every path from it to the loss passes through the value (its
    dominators of the loss). Taken input by input, since a loss reads labels, targets and
    masks by paths that skip the network: no value lies on every path from every input."""
    dag = nx.DiGraph()
    held = ("param", "const")  # weights, not data: a path through them carries no activation
    for v in graph.nodes:
        if v.id in forward and v.op not in held:
            dag.add_node(v.id)
            dag.add_edges_from((i.id, v.id) for i in v.inputs if i.id in forward and i.op not in held)
    sink = "loss"
    dag.add_edges_from((v.id, sink) for v in graph.outputs.values() if v.id in forward and v.shape == ())
    found = set()
    for entry in (v.id for v in graph.nodes if v.op == "input" and v.id in forward):
        if not nx.has_path(dag, entry, sink):
            continue
        idom = nx.immediate_dominators(dag, entry)
        v = idom[sink]
        while v != entry:
            if graph.nodes[v].op not in SOURCES | VIEWS:
                found.add(v)
            v = idom[v]
    return sorted(found)
