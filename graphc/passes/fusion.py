"""Fusion: decide which values get a buffer and group the rest into loop kernels.

Every op falls in one class:
- view (broadcast_to, transpose, reshape, slice, and stop_gradient, an identity at run time):
  kernels read it by index arithmetic on the array underneath, so broadcasting never copies;
  a numpy view is made only where a library call or an output needs one;
- elementwise (incl. cast, where, compares): fused into loop kernels;
- reduction (sum, max, min): a loop kernel that takes its elementwise prologue along;
- library (matmul, concat, pad, take_along_axis, scatter_add, one_hot, argmax, argmin): one call
  (BLAS for matmul, numpy for the rest) on materialized operands.

An elementwise value is *materialized* (written to a buffer) when it is an output, feeds a
view or library op, or is expensive (transcendental) and used by several kernels. Otherwise it
is inlined into every kernel that reads it: cheap ones are recomputed rather than stored.
Each materialized elementwise or reduction value roots a kernel. Then kernels merge, when no
other kernel must run between them:
- siblings: elementwise kernels of one shape share one loop nest;
- epilogue: an elementwise kernel over a reduction's result shape that reads the result runs
  inside the reduction kernel, once per result element (layer norm's ``/ n``, ``+ eps``, rsqrt);
- stored prologue: an elementwise kernel over a reduction's input shape (that does not need
  the reduction's result) is computed in the reduction's loop and stored there: softmax's exp,
  or a loss and its gradient in one pass over the data;
- row epilogue: when a reduction's reduced axes are its innermost ones (one row per result), an
  elementwise kernel over its input shape that reads its result through a broadcast runs in a
  second loop over each row, right after that row is reduced, while the row is in cache:
  softmax is then two passes over the data (max; exp, sum and divide), layer norm two.
Every reason a value was materialized, or two kernels were kept apart, goes to the report.
"""

from dataclasses import dataclass, field

import networkx as nx

from ..ir.ops import OPS

VIEWS = ("broadcast_to", "transpose", "reshape", "slice", "stop_gradient")
INDEXED_VIEWS = ("broadcast_to", "transpose", "slice", "stop_gradient")  # kernels read these by index arithmetic
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
    reduction: object = None  # a loop kernel's reduction value, if it has one
    epilogue: set = field(default_factory=set)  # ids computed after the reduction, per result element
    row: list = field(default_factory=list)  # values computed in a second pass over each row

    @property
    def values(self):
        """Everything the step computes, in graph (topological) order."""
        unique = {v.id: v for v in self.inlined + self.roots + self.row}
        return sorted(unique.values(), key=lambda v: v.id)

    @property
    def domain(self):
        """A loop kernel's iteration shape: the reduction's input, else its values' shape."""
        return self.reduction.inputs[0].shape if self.reduction is not None else self.roots[0].shape


@dataclass
class Fusion:
    groups: list  # in graph order; ``schedule`` makes it an execution order
    materialized: dict  # value id -> why it has a buffer


def group_reads(group) -> set:
    """Ids of the values a group reads from outside itself."""
    inside = {v.id for v in group.values}
    return {i.id for v in group.values for i in v.inputs if i.id not in inside}


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


def fuse(graph, fuse: bool = True) -> Fusion:
    users = _users(graph)
    materialized = _materialize_reasons(graph, users, fuse)
    groups = []
    for v in graph.nodes:
        cls = op_class(v)
        if cls == "source":
            continue
        if cls in ("view", "library"):
            groups.append(Group(f"s{len(groups)}", cls, [v]))
        elif v.id in materialized:
            groups.append(Group(f"k{len(groups)}", "loop", [v], _inlined_closure(v, materialized),
                                [f"%{v.id} {v.op}: {materialized[v.id]}"],
                                reduction=v if cls == "reduction" else None))
    if fuse:
        groups = _merge(groups)
    return Fusion(groups, materialized)


def _how_to_merge(first: Group, later: Group):
    """How loop kernel ``later`` can join ``first`` (which comes before it), or None."""
    if first.kind != "loop" or later.kind != "loop":
        return None
    if first.reduction is None and later.reduction is None:
        return "sibling" if first.domain == later.domain else None
    reads = group_reads(later)
    if (first.reduction is not None and later.reduction is None and first.reduction.id in reads
            and later.domain == first.reduction.shape):
        return "epilogue"
    if _row_reduction(first) and later.reduction is None and not later.row and later.domain == first.domain:
        results = {first.reduction.id} | first.epilogue
        if not reads & results and any(_viewed(i, results) for v in later.values for i in v.inputs):
            return "row epilogue"
    if (first.reduction is None) != (later.reduction is None) and first.domain == later.domain:
        after = set() if first.reduction is None else {first.reduction.id} | first.epilogue
        return None if reads & after else "stored prologue"
    return None


def _row_reduction(g) -> bool:
    """A reduction kernel whose reduced axes are the innermost: one contiguous row per result."""
    if g.reduction is None or g.row:
        return False
    axes, rank = g.reduction.attrs["axes"], len(g.domain)
    return 0 < len(axes) < rank and tuple(axes) == tuple(range(rank - len(axes), rank))


def _viewed(v, ids) -> bool:
    """Is ``v`` a (chain of) broadcast/transpose/slice view(s) of one of ``ids``?"""
    while v.op in INDEXED_VIEWS:
        v = v.inputs[0]
        if v.id in ids:
            return True
    return False


def _merge(groups) -> list:
    """Merge loop kernels pairwise (see the module docstring) while no kernel sits between."""
    producer = {v.id: i for i, g in enumerate(groups) for v in g.roots}
    deps = nx.DiGraph()
    deps.add_nodes_from(range(len(groups)))
    for i, g in enumerate(groups):
        for leaf in group_reads(g):
            if leaf in producer:
                deps.add_edge(producer[leaf], i)
    merged = {}  # group index -> index of the group it joined
    for i, g in enumerate(groups):
        for j in range(i):
            if j in merged:
                continue
            how = _how_to_merge(groups[j], g)
            if how is None:
                continue
            views = _views_between(groups, deps, j, i) if how == "row epilogue" else set()
            if _path_through_other(deps, j, i, views):
                g.reasons.append(f"not merged with {groups[j].name} ({how}): another kernel runs between them")
                continue
            _absorb(groups[j], g, how)
            deps = nx.contracted_nodes(deps, j, i, self_loops=False)
            deps.remove_edges_from([(m, j) for m in views])  # the merged kernel reads those views itself
            merged[i] = j
            break
    return [g for i, g in enumerate(groups) if i not in merged]


def _views_between(groups, deps, a, b) -> set:
    """View steps that re-broadcast what kernel ``a`` computes straight into kernel ``b``."""
    results = {groups[a].reduction.id} | groups[a].epilogue
    return {m for m in deps.successors(a) if groups[m].kind == "view" and deps.has_edge(m, b)
            and _viewed(groups[m].roots[0], results) and not _path_through_other(deps, m, b)}


def _path_through_other(deps, a, b, allowed=frozenset()) -> bool:
    """Is there a path a -> x -> ... -> b (or back) through some other node x not in ``allowed``?"""
    for src, dst in ((a, b), (b, a)):
        for mid in deps.successors(src):
            if mid != dst and mid not in allowed and nx.has_path(deps, mid, dst):
                return True
    return False


def _absorb(into: Group, g: Group, how: str) -> None:
    if how == "row epilogue":  # recomputed per point in the row pass, shared values included
        into.row = g.values
        into.roots = sorted([*into.roots, *g.roots], key=lambda v: v.id)
        into.reasons += g.reasons + [f"{g.name} joined as {how}"]
        return
    if how == "epilogue":
        into.epilogue |= {v.id for v in g.values}
    else:
        into.epilogue |= g.epilogue
        into.reduction = into.reduction if into.reduction is not None else g.reduction
    known = {v.id for v in into.values}
    into.inlined = sorted([*into.inlined, *(v for v in g.inlined if v.id not in known)], key=lambda v: v.id)
    into.roots = sorted([*into.roots, *g.roots], key=lambda v: v.id)
    into.reasons += g.reasons + [f"{g.name} joined as {how}"]
