"""Rematerialization: keep fewer forward activations for the backward, recompute the rest.

The *forward* of a graph is every value its scalar float outputs (its losses) need; everything
else is the *backward*. An *activation* is a forward value that a backward op reads. A strategy
chooses which forward values to keep; every activation not kept is recomputed for the backward
by clones of its forward computation, starting from kept values and graph arguments. Each
clone is placed just before the first backward op that needs it, so the schedule computes it
late, when it is needed. Clones are new values made after CSE ran, so nothing merges them back
into the originals, and fusion fuses recomputed elementwise work into the backward's kernels.

Recomputed values are bit-identical to the originals: a clone is the same op on the same
operands, and the kernels compute every intermediate in its IR dtype whatever they are fused
with (no kernel reassociates: float sums add fixed blocks in a fixed order, see ``codegen``).

Strategies (``compile(g, remat=...)``):
- ``"none"``: keep everything (what fusion stores).
- ``"sqrt"``: Chen et al. 2016. The values every path from a data input to the loss passes
  through (the loss's dominators: the residual stream of a residual net) form the spine; about
  sqrt(n) of them, evenly spaced, are kept and everything between is recomputed, segment by
  segment during the backward: one extra forward, plus the elementwise values the backward
  reads, computed again where it reads them (see ``_rewrite``).
- ``"mincut"``: keep the fewest bytes that separate the forward from the backward (a networkx
  minimum cut, the idea of PyTorch's min-cut partitioner). Matmuls, reductions, library ops
  and the spine are never recomputed; elementwise ops and views are.

``gc.checkpoint(x)`` keeps ``x`` under every strategy; ``gc.checkpoint(x, save=False)`` never
keeps it.
"""

import math
from dataclasses import dataclass, field

import networkx as nx

from ..errors import CompileError
from ..ir.graph import Graph
from ..ir.ops import SOURCES, OpClass, base_of, flops, op_class
from .analysis import activation_ids, forward_flops, forward_ids, marks, spine

STRATEGIES = ("none", "sqrt", "mincut")


@dataclass
class Remat:
    """What the pass did: the rewritten graph and which forward values it keeps or recomputes."""

    strategy: str
    graph: Graph
    kept: list = field(default_factory=list)  # ids (in the rewritten graph) of activations kept
    recomputed: dict = field(default_factory=dict)  # clone id -> id of the forward value it recomputes (both in .graph)
    recompute_flops: int = 0
    forward_flops: int = 0
    note: str = ""  # how a budget search chose the plan
    chain: set = field(default_factory=set)  # clones that only feed other clones (a segment's re-run)

    @property
    def late(self) -> set:
        """Clones the backward reads: to be computed with the backward, not with a segment's re-run."""
        return set(self.recomputed) - self.chain


def rematerialize(graph, strategy="none") -> Remat:
    """Apply ``strategy``; the result's graph computes the same outputs, bit for bit."""
    if strategy not in STRATEGIES:
        raise CompileError(f"remat {strategy!r} is not a strategy; choose one of {', '.join(STRATEGIES)}")
    forward = forward_ids(graph)
    needed = activation_ids(graph, forward)
    if strategy == "none" or not needed:
        return unchanged(graph, strategy, forward, needed)
    choose = {"sqrt": _sqrt_keep, "mincut": _mincut_keep}[strategy]
    keep = choose(graph, forward, needed)
    for vid, save in marks(graph).items():
        if vid in forward:
            (keep.add if save else keep.discard)(vid)
    return rewrite(graph, forward, needed, keep, strategy)


def unchanged(graph, strategy: str, forward: set, needed: list, note: str = "") -> Remat:
    """The plan that keeps every activation: the graph as it is."""
    return Remat(strategy=strategy, graph=graph, kept=needed, forward_flops=forward_flops(graph, forward), note=note)


# ------------------------------------------------------------------ strategies


def _sqrt_keep(graph, forward: set, needed: list) -> set:
    """Keep about sqrt(n) evenly spaced values of the spine (see the module docstring)."""
    line = spine(graph, forward) or needed
    segments = max(1, math.isqrt(len(line) - 1) + 1) if line else 1  # ceil(sqrt(n))
    step = len(line) / segments
    return {line[round(k * step) - 1] for k in range(1, segments)}


_NEVER_RECOMPUTED = (OpClass.LIBRARY, OpClass.REDUCTION)


def _mincut_keep(graph, forward: set, needed: list) -> set:
    """The cheapest set of bytes to keep that cuts every path from the graph's arguments to
    the backward's reads, recomputing only elementwise ops and views, and never the spine:
    recomputing a residual stream value needs the one before it, so the backward would
    recompute the whole stream at its start and hold it throughout."""
    pinned = set(spine(graph, forward))
    net = nx.DiGraph()
    src, snk = "src", "snk"
    for vid in sorted(forward):
        v = graph.nodes[vid]
        if _free(v):  # at hand in the backward as in the forward: not part of the network
            continue
        savable = op_class(v) is not OpClass.VIEW
        net.add_edge(("in", vid), ("out", vid), **({"capacity": v.type.nbytes} if savable else {}))
        if op_class(v) in _NEVER_RECOMPUTED or vid in pinned:
            net.add_edge(src, ("in", vid))  # computed by the forward only: keep it or what it feeds
        for i in v.inputs:
            if not _free(i):
                net.add_edge(("out", i.id), ("in", vid))
    for vid in needed:
        if not _free(graph.nodes[vid]):
            net.add_edge(("out", vid), snk)
    if src not in net or snk not in net:  # nothing pinned to the forward, or nothing to cut off
        return set()
    _, (reachable, _) = nx.minimum_cut(net, src, snk)
    return {vid for kind, vid in (n for n in reachable if isinstance(n, tuple))
            if kind == "in" and ("out", vid) not in reachable}


def _free(v) -> bool:
    """Arguments, constants and views of them: at hand without keeping anything."""
    return base_of(v).op in SOURCES


# ------------------------------------------------------------------ the rewrite


def rewrite(graph, forward: set, needed: list, keep: set, strategy: str) -> Remat:
    """A new graph: the forward as it was, then the backward with clones of every activation
    not kept, each emitted just before the first backward value that reads it."""
    new = Graph(graph.name)
    twin = {}  # old id -> new value
    clones = ({}, {})  # old forward id -> its clone: for other clones; for backward ops
    recomputed = {}
    pinned = set(spine(graph, forward))

    def available(v) -> bool:
        return v.op in SOURCES or v.id in keep or (op_class(v) is OpClass.VIEW and available(v.inputs[0]))

    def own(v, for_backward) -> bool:
        return for_backward and op_class(v) in (OpClass.ELEMENTWISE, OpClass.VIEW) and v.id not in pinned

    def ready(v, for_backward):
        return twin[v.id] if available(v) else clones[own(v, for_backward)].get(v.id)

    def recompute(v, for_backward=False):
        """``v`` for the backward: the forward value itself, or its clone. An elementwise value
        a backward op reads gets a clone of its own, made where the backward first needs it,
        apart from the one a recomputed segment uses to get further: that one dies at once,
        this one lives only as long as the backward uses it (and is usually fused into them).
        Clones are made depth first, operands in order, by an explicit stack (a recomputed
        segment can be thousands of values long)."""
        stack = [(v, for_backward)]
        while stack:
            u, fb = stack[-1]
            if ready(u, fb) is not None:
                stack.pop()
                continue
            mine = own(u, fb)
            missing = [(i, mine) for i in u.inputs if ready(i, mine) is None]
            if missing:
                stack.extend(reversed(missing))
                continue
            stack.pop()
            clone = clones[mine][u.id] = new.add_node(u.op, [ready(i, mine) for i in u.inputs], dict(u.attrs))
            recomputed[clone.id] = u.id
        return ready(v, for_backward)

    for v in graph.nodes:
        if v.id in forward or v.op in SOURCES:
            twin[v.id] = new.add_node(v.op, [twin[i.id] for i in v.inputs], dict(v.attrs))
        else:
            inputs = [recompute(i, for_backward=True) if i.id in forward else twin[i.id] for i in v.inputs]
            twin[v.id] = new.add_node(v.op, inputs, dict(v.attrs))
    for name, v in graph.outputs.items():
        new.output(name, twin[v.id])
    kept = sorted({twin[base_of(graph.nodes[i]).id].id for i in set(needed) | keep
                   if i in forward and available(graph.nodes[i]) and graph.nodes[i].op not in SOURCES
                   and base_of(graph.nodes[i]).op not in SOURCES})
    return Remat(strategy=strategy, graph=new, kept=kept, recomputed={c: twin[old].id for c, old in recomputed.items()},
                 recompute_flops=sum(flops(graph.nodes[old]) for old in recomputed.values()),
                 forward_flops=forward_flops(graph, forward), chain={c.id for c in clones[0].values()})
