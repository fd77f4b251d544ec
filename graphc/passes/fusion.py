"""Fusion: decide which values get a buffer and group the rest into loop kernels.

Every op falls in one class:
- view (broadcast_to, transpose, reshape, slice): a strided numpy view of its operand, made at
  run time; kernels read it by index arithmetic, so broadcasting never copies;
- elementwise (incl. cast, where, compares): fused into loop kernels;
- reduction (sum, max, min): a loop kernel that takes its elementwise prologue along;
- library (matmul, concat, pad, take_along_axis, scatter_add, one_hot, argmax, argmin): one call
  (BLAS for matmul, numpy for the rest) on materialized operands.

An elementwise value is *materialized* (written to a buffer) when it is an output, feeds a
view or library op, or is expensive (transcendental) and used by several kernels. Otherwise it
is inlined into every kernel that reads it: cheap ones are recomputed rather than stored.
Each materialized elementwise or reduction value roots a kernel; roots of the same shape that
do not depend on each other through another kernel share one loop nest (siblings). Every
reason a value was materialized, or two kernels were kept apart, is recorded for the report.
"""

from dataclasses import dataclass, field

import networkx as nx

from ..ir.ops import OPS

VIEWS = ("broadcast_to", "transpose", "reshape", "slice")
INDEXED_VIEWS = ("broadcast_to", "transpose", "slice")  # loop kernels read these by index arithmetic
LIBRARY = ("matmul", "concat", "pad", "take_along_axis", "scatter_add", "one_hot", "argmax", "argmin")
SOURCES = ("input", "param", "const")


def op_class(v) -> str:
    if v.op in SOURCES:
        return "source"
    if v.op in VIEWS:
        return "view"
    if v.op in LIBRARY:
        return "library"
    if OPS[v.op].kind == "reduction":
        return "reduction"
    return "elementwise"


@dataclass
class Group:
    """One step of the plan: a loop kernel, a library call, or a view."""

    name: str
    kind: str  # "loop" | "library" | "view"
    roots: list  # values this step produces (buffers or views)
    inlined: list = field(default_factory=list)  # elementwise values computed inside, in order
    reasons: list = field(default_factory=list)

    @property
    def values(self):
        """Everything the step computes, in graph (topological) order."""
        return sorted(self.inlined + self.roots, key=lambda v: v.id)


@dataclass
class Fusion:
    groups: list  # in a valid execution order
    group_of: dict  # value id -> group that produces it (roots, inlined values of their kernel)
    materialized: dict  # value id -> why it has a buffer


def _users(graph) -> dict:
    users = {v.id: [] for v in graph.nodes}
    for v in graph.nodes:
        for i in {i.id for i in v.inputs}:
            users[i].append(v)
    return users


def _materialize_reasons(graph, users, fuse: bool) -> dict:
    outputs = {v.id for v in graph.outputs.values()}
    why = {}
    for v in graph.nodes:
        cls = op_class(v)
        if cls in ("source", "view"):
            continue
        if cls in ("library", "reduction"):
            why[v.id] = f"{cls} result"
        elif not fuse:
            why[v.id] = "fusion is off"
        elif v.id in outputs:
            why[v.id] = "graph output"
        elif any(op_class(u) in ("view", "library") for u in users[v.id]):
            u = next(u for u in users[v.id] if op_class(u) in ("view", "library"))
            why[v.id] = f"read by {u.op} %{u.id}, which needs a buffer"
        elif OPS[v.op].transcendental and len(users[v.id]) > 1:
            why[v.id] = f"transcendental read by {len(users[v.id])} ops: computed once, not duplicated"
    return why


def _inlined_closure(root, materialized) -> list:
    """The non-materialized elementwise values ``root`` reads, transitively, in graph order."""
    seen, stack = {}, list(root.inputs)
    while stack:
        v = stack.pop()
        if v.id in seen or v.id in materialized or op_class(v) != "elementwise":
            continue
        seen[v.id] = v
        stack.extend(v.inputs)
    return sorted(seen.values(), key=lambda v: v.id)


def _leaves(values, materialized) -> set:
    """Ids of the buffers and views a set of kernel values reads."""
    inside = {v.id for v in values}
    return {i.id for v in values for i in v.inputs if i.id not in inside}


def fuse(graph, fuse: bool = True) -> Fusion:
    users = _users(graph)
    materialized = _materialize_reasons(graph, users, fuse)
    groups, group_of = [], {}
    for v in graph.nodes:
        cls = op_class(v)
        if cls == "source":
            continue
        if cls in ("view", "library"):
            groups.append(Group(f"s{len(groups)}", cls, [v]))
        elif v.id in materialized:
            groups.append(Group(f"k{len(groups)}", "loop", [v], _inlined_closure(v, materialized),
                                [f"%{v.id} {v.op}: {materialized[v.id]}"]))
        else:
            continue
        for u in groups[-1].values:
            group_of.setdefault(u.id, groups[-1])
    if fuse:
        groups = _merge_siblings(groups, materialized)
    group_of = {u.id: g for g in groups for u in g.values}
    return Fusion(groups, group_of, materialized)


def _domain(g):
    """The loop domain of a loop group: elementwise roots share their shape."""
    root = g.roots[0]
    return ("elementwise", root.shape) if op_class(root) == "elementwise" else None


def _merge_siblings(groups, materialized) -> list:
    """Merge elementwise loop kernels of one shape when no other kernel sits between them."""
    producer = {v.id: i for i, g in enumerate(groups) for v in g.roots}
    deps = nx.DiGraph()
    deps.add_nodes_from(range(len(groups)))
    for i, g in enumerate(groups):
        for leaf in _leaves(g.values, materialized):
            if leaf in producer:
                deps.add_edge(producer[leaf], i)
    merged = {}  # group index -> index of the group it joined
    for i, g in enumerate(groups):
        if g.kind != "loop" or _domain(g) is None:
            continue
        for j in range(i):
            target = merged.get(j, j)
            if target != j or groups[target].kind != "loop" or _domain(groups[target]) != _domain(g):
                continue
            if _path_through_other(deps, target, i):
                g.reasons.append(f"not merged with {groups[target].name}: another kernel runs between them")
                continue
            _absorb(groups[target], g)
            deps = nx.contracted_nodes(deps, target, i, self_loops=False)
            merged[i] = target
            break
    return [g for i, g in enumerate(groups) if i not in merged]


def _path_through_other(deps, a, b) -> bool:
    """Is there a path a -> x -> ... -> b (or back) through some other node x?"""
    for src, dst in ((a, b), (b, a)):
        for mid in deps.successors(src):
            if mid != dst and nx.has_path(deps, mid, dst):
                return True
    return False


def _absorb(into: Group, g: Group) -> None:
    known = {v.id for v in into.values}
    into.inlined = sorted([*into.inlined, *(v for v in g.inlined if v.id not in known)], key=lambda v: v.id)
    into.roots = sorted([*into.roots, *g.roots], key=lambda v: v.id)
    into.reasons += g.reasons
