"""Scheduling: the order in which the fused groups run, and which views must be made.

Groups must run after the groups whose values they read. Fusion lists groups in graph order,
but merging sibling kernels can move a kernel before a producer, so this pass sorts the group
graph topologically, keeping the original order where it is free to.

Loop kernels read broadcast/transpose/slice operands by index arithmetic on the array
underneath, so a view step is kept only when a library call, an output, a loop kernel (as the
array it indexes) or another kept view reads it.
"""

import networkx as nx

from .fusion import INDEXED_VIEWS, group_reads


def _indexed_base(v):
    while v.op in INDEXED_VIEWS:
        v = v.inputs[0]
    return v


def _needed_views(graph, groups) -> set:
    by_id = {v.id: v for v in graph.nodes}
    needed = {v.id for v in graph.outputs.values()}
    for g in groups:
        reads = group_reads(g)
        if g.kind == "loop":
            needed |= {_indexed_base(by_id[r]).id for r in reads}
        elif g.kind == "library":
            needed |= reads
    for g in reversed(groups):
        if g.kind == "view" and g.roots[0].id in needed:
            needed.add(g.roots[0].inputs[0].id)
    return needed


def schedule(graph, fusion) -> list:
    producer = {v.id: g.name for g in fusion.groups for v in g.roots}
    deps = nx.DiGraph()
    order = {g.name: k for k, g in enumerate(fusion.groups)}
    deps.add_nodes_from(order)
    by_id = {v.id: v for v in graph.nodes}
    for g in fusion.groups:
        for leaf in group_reads(g):
            if leaf in producer and producer[leaf] != g.name and producer.get(_indexed_base(by_id[leaf]).id) != g.name:
                deps.add_edge(producer[leaf], g.name)  # (a view of the group's own result is read in place)
    by_name = {g.name: g for g in fusion.groups}
    steps = [by_name[n] for n in nx.lexicographical_topological_sort(deps, key=order.get)]
    needed = _needed_views(graph, steps)
    return [s for s in steps if s.kind != "view" or s.roots[0].id in needed]
