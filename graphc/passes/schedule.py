"""Scheduling: the order in which the fused groups run, and which views must be made.

Groups must run after the groups whose values they read. Fusion lists groups in graph order,
but merging sibling kernels can move a kernel before a producer, so this pass sorts the group
graph topologically. Two orders are made: graph order wherever it is free to keep it, and a
memory-aware one that runs first whatever frees bytes (its new buffers fewer than those it
reads for the last time), else keeps graph order: it frees early, and computes late what is
used late because graph order (and remat's placement of clones) does. The memory plan
decides: the order with the lower planned peak wins, so the pass never raises the peak. Any
topological order computes the same bits.

Loop kernels read broadcast/transpose/slice operands by index arithmetic on the array
underneath, so a view step is kept only when a library call, an output, a loop kernel (as the
array it indexes) or another kept view reads it.
"""

import networkx as nx

from ..ir.ops import INDEXED_VIEWS, SOURCES, base_of
from .fusion import StepKind, group_reads
from .memory import plan_memory


def _needed_views(graph, steps) -> set:
    by_id = {v.id: v for v in graph.nodes}
    needed = {v.id for v in graph.outputs.values()}
    for step in steps:
        reads = group_reads(step)
        if step.kind is StepKind.LOOP:
            needed |= {base_of(by_id[r], INDEXED_VIEWS).id for r in reads}
        elif step.kind is StepKind.LIBRARY:
            needed |= reads
    for step in reversed(steps):
        if step.kind is StepKind.VIEW and step.roots[0].id in needed:
            needed.add(step.roots[0].inputs[0].id)
    return needed


def schedule(graph, fusion) -> tuple:
    """(steps, their memory plan): of the graph order and the memory-greedy order, the one
    with the lower planned peak."""
    orders = [_graph_order(graph, fusion), _memory_order(graph, fusion)]
    plans = [(steps, plan_memory(graph, steps)) for steps in (_without_unneeded_views(graph, o) for o in orders)]
    return min(plans, key=lambda plan: plan[1].peak_bytes)


def _without_unneeded_views(graph, steps) -> list:
    needed = _needed_views(graph, steps)
    return [s for s in steps if s.kind is not StepKind.VIEW or s.roots[0].id in needed]


def _deps(graph, fusion) -> nx.DiGraph:
    producer = {v.id: group.name for group in fusion.groups for v in group.roots}
    deps = nx.DiGraph()
    order = {group.name: k for k, group in enumerate(fusion.groups)}
    deps.add_nodes_from(order)
    by_id = {v.id: v for v in graph.nodes}
    for group in fusion.groups:
        for leaf in group_reads(group):
            if (leaf in producer and producer[leaf] != group.name
                    and producer.get(base_of(by_id[leaf], INDEXED_VIEWS).id) != group.name):
                deps.add_edge(producer[leaf], group.name)  # (a view of the group's own result is read in place)
    return deps


def _graph_order(graph, fusion) -> list:
    order = {group.name: k for k, group in enumerate(fusion.groups)}
    by_name = {group.name: group for group in fusion.groups}
    return [by_name[n] for n in nx.lexicographical_topological_sort(_deps(graph, fusion), key=order.get)]


def _memory_order(graph, fusion) -> list:
    """Greedy list scheduling on bytes: run the ready group that frees the most bytes net (its
    new buffers less the buffers it reads for the last time); when none frees any, the first
    in graph order, so nothing is computed earlier than the graph places it."""
    deps = _deps(graph, fusion)
    by_name = {group.name: group for group in fusion.groups}
    index = {group.name: k for k, group in enumerate(fusion.groups)}
    by_id = {v.id: v for v in graph.nodes}
    outputs = {base_of(v).id for v in graph.outputs.values()}
    reads = {group.name: {base_of(by_id[i]).id for i in group_reads(group)} for group in fusion.groups}
    readers = {}
    for name, bases in reads.items():
        for b in bases:
            readers.setdefault(b, set()).add(name)
    made = {group.name: 0 if group.kind is StepKind.VIEW else sum(v.type.nbytes for v in group.roots)
            for group in fusion.groups}
    # added[n]: bytes n's step would add, its new buffers less those it is the last to read,
    # kept up to date as steps run (a buffer down to one reader frees its bytes there)
    added = dict(made)
    freeable = {b: by_id[b].type.nbytes for b in readers if b not in outputs and by_id[b].op not in SOURCES}
    for b, size in freeable.items():
        if len(readers[b]) == 1:
            added[next(iter(readers[b]))] -= size
    waiting = {n: deps.in_degree(n) for n in deps}
    ready = {n for n, d in waiting.items() if d == 0}
    order = []
    while ready:
        freeing = [n for n in ready if added[n] < 0]
        n = min(freeing, key=lambda n: (added[n], index[n])) if freeing else min(ready, key=index.get)
        ready.remove(n)
        order.append(by_name[n])
        for b in reads[n]:
            readers[b].discard(n)
            if len(readers[b]) == 1 and b in freeable:
                added[next(iter(readers[b]))] -= freeable[b]
        for m in deps.successors(n):
            waiting[m] -= 1
            if waiting[m] == 0:
                ready.add(m)
    return order
