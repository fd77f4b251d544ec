"""Fusion: decide which values get a buffer and group the rest into loop kernels.

Every op falls in one class:
- view (broadcast_to, transpose, reshape, slice; stop_gradient and checkpoint, identities at run time):
  kernels read it by index arithmetic on the array underneath, so broadcasting never copies;
  a numpy view is made only where a library call or an output needs one;
- elementwise (incl. cast, where, compares, and one_hot, which reads its labels at the leading
  loop indices and compares them with the last): fused into loop kernels;
- reduction (sum, max, min): a loop kernel that takes its elementwise prologue along;
- library (matmul, concat, pad, take, take_along_axis, scatter_add, index_add, argmax,
  argmin): one call on materialized operands (on the CPU numpy for matmul and concat, a
  generated kernel for the rest).

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

import itertools
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from ..ir.ops import INDEXED_VIEWS, OPS, OpClass, base_of, op_class

_BUFFERED_READERS = (OpClass.VIEW, OpClass.LIBRARY)  # ops that read their operands' buffers


class StepKind(StrEnum):
    """What a step of the plan is."""

    LOOP = "loop"  # a fused loop kernel
    LIBRARY = "library"  # one library call
    VIEW = "view"  # a numpy view


@dataclass
class Group:
    """One step of the plan: a loop kernel, a library call, or a view."""

    name: str
    kind: StepKind
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
    materialized: dict  # value id -> why it has a buffer (a Buffer)


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


MAX_KERNEL_OPS = 64  # numba's compile time grows faster than the kernel: 25 ops 0.9 s, 200 ops 15 s


class Why(Enum):
    """Why a value has a buffer. Passes decide on these; the report's words are for people."""

    RESULT = "result"  # of a library op or a reduction
    UNFUSED = "fusion is off"
    OUTPUT = "graph output"
    FEEDS_BUFFER = "read by an op that needs a buffer"  # a view or library op
    SHARED_TRANSCENDENTAL = "transcendental read by several ops"
    SHARED_WIDE = "read by several ops, each inlining would keep arrays of its size alive"
    SPLITS_CHAIN = "splits a chain"


@dataclass(frozen=True)
class Buffer:
    """A materialized value's reason: ``why``, and the report's sentence about it."""

    why: Why
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def for_sharing(self) -> bool:
        """Given a buffer only so that several kernels could read it (see ``_keep_local``)."""
        return self.why in (Why.SHARED_TRANSCENDENTAL, Why.SHARED_WIDE)


class Merge(Enum):
    """How a later loop kernel joins an earlier one (see the module docstring)."""

    SIBLING = "sibling"
    EPILOGUE = "epilogue"
    ROW_EPILOGUE = "row epilogue"
    STORED_PROLOGUE = "stored prologue"

    def __str__(self) -> str:
        return self.value


def _materialize_reasons(graph, users, fuse: bool) -> dict:
    outputs = {v.id for v in graph.outputs.values()}
    why = {}
    inline = {}  # elementwise value id -> ids of the kernel it roots or is inlined into, so far
    for v in graph.nodes:
        cls = op_class(v)
        if cls in (OpClass.SOURCE, OpClass.VIEW):
            continue
        if cls is OpClass.ELEMENTWISE and fuse:
            inline[v.id] = _capped_closure(v, inline, why)
        if cls in (OpClass.LIBRARY, OpClass.REDUCTION):
            why[v.id] = Buffer(Why.RESULT, f"{cls} result")
        elif not fuse:
            why[v.id] = Buffer(Why.UNFUSED, "fusion is off")
        elif v.id in outputs:
            why[v.id] = Buffer(Why.OUTPUT, "graph output")
        elif any(op_class(u) in _BUFFERED_READERS for u in users[v.id]):
            u = next(u for u in users[v.id] if op_class(u) in _BUFFERED_READERS)
            why[v.id] = Buffer(Why.FEEDS_BUFFER, f"read by {u.op} %{u.id}, which needs a buffer")
        elif OPS[v.op].transcendental and len(users[v.id]) > 1:
            why[v.id] = Buffer(Why.SHARED_TRANSCENDENTAL,
                               f"transcendental read by {len(users[v.id])} ops: computed once, not duplicated")
        elif len(users[v.id]) > 1 and len(full := _full_size_reads(v, why)) > 1:
            why[v.id] = Buffer(Why.SHARED_WIDE, f"read by {len(users[v.id])} ops, and inlining it would keep "
                               f"{len(full)} arrays of its size alive for each ({', '.join(f'%{i}' for i in full)})")
    return why


def _capped_closure(v, inline: dict, why: dict) -> set:
    """``v`` and the elementwise values inlined into it, with at most ``MAX_KERNEL_OPS`` of
    them: past that, the input that brings the most is given a buffer, splitting a long chain
    into kernels that numba compiles in time linear in their total size."""
    while True:
        parts = [inline[i.id] for i in v.inputs if i.id in inline and i.id not in why]
        closure = {v.id}.union(*parts)
        if len(closure) <= MAX_KERNEL_OPS:
            return closure
        biggest = max((i for i in v.inputs if i.id in inline and i.id not in why), key=lambda i: len(inline[i.id]))
        why[biggest.id] = Buffer(Why.SPLITS_CHAIN, f"splits a chain: a kernel computes at most {MAX_KERNEL_OPS} ops")


def _full_size_reads(v, materialized) -> list:
    """Ids of the arrays as large as ``v`` that inlining ``v`` would read. Inlining a value
    saves its buffer only while it reads at most one such array; a residual stream
    ``h + f(h)`` inlined into every later block would keep every block's arrays alive."""
    bases = set()
    for leaf in _leaves(v, materialized):
        leaf = base_of(leaf, INDEXED_VIEWS)
        if leaf.op != "const" and leaf.size >= v.size:
            bases.add(leaf.id)
    return sorted(bases)


def _leaves(root, materialized) -> list:
    """What the inlined closure of ``root`` (``root`` included) reads from outside it."""
    inside = {root.id} | {u.id for u in _inlined_closure(root, materialized)}
    closure = [root] + _inlined_closure(root, materialized)
    return [i for u in closure for i in u.inputs if i.id not in inside]


def _inlined_closure(root, materialized) -> list:
    """The non-materialized elementwise values ``root`` reads, transitively, in graph order."""
    seen, stack = {}, list(root.inputs)
    while stack:
        v = stack.pop()
        if v.id in seen or v.id in materialized or op_class(v) is not OpClass.ELEMENTWISE:
            continue
        seen[v.id] = v
        stack.extend(v.inputs)
    return sorted(seen.values(), key=lambda v: v.id)


def fuse(graph, fuse: bool = True, apart=()) -> Fusion:
    """Group ``graph`` into kernels. ``apart`` are disjoint sets of value ids (rematerialization's
    forward, a segment's re-run, the backward's recomputations): no kernel merges values of two
    of them, since merging would compute a recomputation with the forward again, or early, and
    keep it alive until the backward reads it."""
    users = _users(graph)
    materialized = _materialize_reasons(graph, users, fuse)
    groups = []
    for v in graph.nodes:
        cls = op_class(v)
        if cls is OpClass.SOURCE:
            continue
        if cls in (OpClass.VIEW, OpClass.LIBRARY):
            kind = StepKind.VIEW if cls is OpClass.VIEW else StepKind.LIBRARY
            groups.append(Group(f"s{len(groups)}", kind, [v]))
        elif v.id in materialized:
            groups.append(Group(f"k{len(groups)}", StepKind.LOOP, [v], _inlined_closure(v, materialized),
                                [f"%{v.id} {v.op}: {materialized[v.id]}"],
                                reduction=v if cls is OpClass.REDUCTION else None))
    if fuse:
        groups = _merge(groups, [set(a) for a in apart])
        _keep_local(groups, users, materialized)
    return Fusion(groups, materialized)


def _keep_local(groups, users, materialized) -> None:
    """A value given a buffer so that several kernels could share it needs none when merging
    put every reader in its own kernel: it stays a local of the loop (GELU's tanh: 64 MB)."""
    read_outside = set().union(*(group_reads(group) for group in groups))
    for group in groups:
        if group.kind is not StepKind.LOOP:
            continue
        inside = {v.id for v in group.values}
        later = {i.id for v in group.row for i in v.inputs}
        later |= {i.id for v in group.values if v.id in group.epilogue for i in v.inputs}
        row = {v.id for v in group.row}
        for root in list(group.roots):
            why = materialized.get(root.id)
            if (why is None or not why.for_sharing
                    or root is group.reduction or root.id in group.epilogue
                    or root.id in read_outside or any(u.id not in inside for u in users[root.id])
                    or (root.id in later and root.id not in row)):
                continue
            group.roots = [r for r in group.roots if r.id != root.id]
            if root.id not in row:
                group.inlined = sorted([*group.inlined, root], key=lambda v: v.id)
            del materialized[root.id]
            group.reasons.append(f"%{root.id} {root.op}: every reader is in this kernel, so it needs no buffer")


def _how_to_merge(first: Group, later: Group, first_bases: set, reads: set, later_bases: set) -> Merge | None:
    """How loop kernel ``later`` can join ``first`` (which comes before it), or None; with the
    arrays ``first`` reads (its ``_bases``), what ``later`` reads, and its bases."""
    if first.kind is not StepKind.LOOP or later.kind is not StepKind.LOOP:
        return None
    shared = first_bases & later_bases or reads & {r.id for r in first.roots}
    if first.reduction is None and later.reduction is None:
        return Merge.SIBLING if first.domain == later.domain and shared else None
    if (first.reduction is not None and later.reduction is None and first.reduction.id in reads
            and later.domain == first.reduction.shape):
        return Merge.EPILOGUE
    if _row_reduction(first) and later.reduction is None and not later.row and later.domain == first.domain:
        results = {first.reduction.id} | first.epilogue
        if not reads & results and any(_viewed(i, results) for v in later.values for i in v.inputs):
            return Merge.ROW_EPILOGUE
    if (first.reduction is None) != (later.reduction is None) and first.domain == later.domain:
        after = set() if first.reduction is None else {first.reduction.id} | first.epilogue
        after |= {v.id for v in first.row}  # the row pass runs after the reduction, too
        return None if reads & after or not shared else Merge.STORED_PROLOGUE
    return None


def _bases(group, reads) -> set:
    """The arrays a group reads, looking through broadcasts, transposes and slices. Kernels
    that read none in common gain nothing from one loop; merging would only move the later
    one earlier and keep its results alive longer."""
    by_id = {i.id: i for v in group.values for i in v.inputs}
    bases = set()
    for r in reads:
        v = base_of(by_id[r], INDEXED_VIEWS)
        if not (v.op == "const" and v.ndim == 0):
            bases.add(v.id)
    return bases


def _row_reduction(group) -> bool:
    """A reduction kernel whose reduced axes are the innermost: one contiguous row per result."""
    if group.reduction is None or group.row:
        return False
    axes, rank = group.reduction.attrs["axes"], len(group.domain)
    return 0 < len(axes) < rank and tuple(axes) == tuple(range(rank - len(axes), rank))


def _viewed(v, ids) -> bool:
    """Is ``v`` a (chain of) broadcast/transpose/slice view(s) of one of ``ids``?"""
    while v.op in INDEXED_VIEWS:
        v = v.inputs[0]
        if v.id in ids:
            return True
    return False


def _merge(groups, apart: list) -> list:
    """Merge loop kernels pairwise (see the module docstring) while no kernel sits between.

    Candidate sets are bit sets over group indices, so a long unrolled loop, whose kernels all
    read the same bias or weight, does not try every pair of its steps: of the earlier kernels
    reading an array in common (or producing what it reads), those that reach it through
    another kernel, or that remat keeps apart from it, can never join it and are counted, not
    tried."""
    producer = {v.id: i for i, group in enumerate(groups) for v in group.roots}
    deps = _Deps(len(groups))
    for i, group in enumerate(groups):
        for leaf in group_reads(group):
            if leaf in producer:
                deps.add_edge(producer[leaf], i)
    merged = {}  # group index -> index of the group it joined
    reads = [group_reads(group) for group in groups]
    bases = [_bases(group, r) for group, r in zip(groups, reads)]
    readers, owner = {}, {}  # array id -> bits of the groups reading it; value id -> its group
    for k, group in enumerate(groups):
        for b in bases[k]:
            readers[b] = readers.get(b, 0) | 1 << k
        owner.update((v.id, k) for v in group.values)
    sizes = [len(group.values) for group in groups]  # kept up to date as groups absorb others
    marks = [_marks(group, apart) for group in groups]
    by_mark = {}  # remat marks -> bits of the unmerged loop kernels before i with them
    for i, group in enumerate(groups):
        near = 0
        for b in bases[i]:
            near |= readers.get(b, 0)
        for r in reads[i] | bases[i]:
            if r in owner:
                near |= 1 << owner[r]
        near &= sum(by_mark.values())  # unmerged earlier loop kernels (stale entries drop out here)
        through = 0  # whatever reaches i through another kernel
        for p in deps.preds[i]:
            if groups[p].kind is not StepKind.VIEW:
                through |= deps.anc[p]
        together = sum(bits for m, bits in by_mark.items() if (m | marks[i]).bit_count() <= 1)
        skipped = {"each runs before a kernel this one waits for": near & through,
                   "rematerialization keeps each apart from it": near & ~through & ~together}
        for j in _bits(near & ~through & together):
            how = _how_to_merge(groups[j], group, bases[j], reads[i], bases[i])
            if how is None:
                continue
            if sizes[j] + sizes[i] > MAX_KERNEL_OPS:
                group.reasons.append(f"not merged with {groups[j].name} ({how}): together they would compute "
                                     f"over {MAX_KERNEL_OPS} ops")
                continue
            views = _views_between(groups, deps, j, i) if how is Merge.ROW_EPILOGUE else set()
            if deps.path_through_other(j, i, views):
                group.reasons.append(f"not merged with {groups[j].name} ({how}): another kernel runs between them")
                continue
            _absorb(groups[j], group, how)
            by_mark[marks[j]] &= ~(1 << j)
            sizes[j], marks[j] = len(groups[j].values), marks[j] | marks[i]
            by_mark[marks[j]] = by_mark.get(marks[j], 0) | 1 << j
            reads[j] = group_reads(groups[j])
            bases[j] = _bases(groups[j], reads[j])
            for b in bases[j]:
                readers[b] = readers.get(b, 0) | 1 << j
            owner.update((v.id, j) for v in group.values)
            deps.contract(j, i, views)  # the merged kernel reads those views itself
            merged[i] = j
            break
        for why, bits in skipped.items():
            bits &= (1 << merged.get(i, i)) - 1  # those before the kernel it joined
            if bits:
                first = [groups[j].name for j in itertools.islice(_bits(bits), 3)]
                shown = ", ".join(first) + (", ..." if bits.bit_count() > 3 else "")
                n = bits.bit_count()
                group.reasons.append(f"not merged with {shown} ({n} earlier kernel{'s' if n > 1 else ''} reading "
                                     f"the same arrays): {why}")
        if i not in merged and group.kind is StepKind.LOOP:
            by_mark[marks[i]] = by_mark.get(marks[i], 0) | 1 << i
    return [group for i, group in enumerate(groups) if i not in merged]


def _bits(bits: int):
    """The set bits' positions, lowest first."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def _marks(group: Group, apart: list) -> int:
    """Bit k set when ``group`` computes a value of ``apart[k]``; two kernels stay apart when
    together they would have two bits."""
    ids = {v.id for v in group.values}
    return sum(1 << k for k, s in enumerate(apart) if not ids.isdisjoint(s))


class _Deps:
    """The dependency DAG between groups (edges from lower to higher index), with every node's
    ancestors kept as a bit set, so "is there a path through another kernel?" is a few big-int
    ands instead of a graph search (a 32-block residual net's backward: 12 s -> well under 1)."""

    def __init__(self, n: int):
        self.preds = [set() for _ in range(n)]
        self.succs = [set() for _ in range(n)]
        self.anc = [0] * n

    def add_edge(self, a: int, b: int) -> None:  # called in increasing b, so anc[a] is final
        self.preds[b].add(a)
        self.succs[a].add(b)
        self.anc[b] |= self.anc[a] | 1 << a

    def successors(self, a: int):
        return self.succs[a]

    def has_edge(self, a: int, b: int) -> bool:
        return b in self.succs[a]

    def path_through_other(self, a: int, b: int, allowed=frozenset()) -> bool:
        """Is there a path a -> x -> ... -> b (or back) through some node x not in ``allowed``?"""
        return self._via_other(a, b, allowed) or self._via_other(b, a, allowed)

    def _via_other(self, a: int, b: int, allowed) -> bool:
        for p in self.preds[b]:
            if p == a:
                continue
            if p not in allowed and (self.anc[p] >> a) & 1:
                return True
            if p in allowed and self._via_other(a, p, allowed):
                return True
        return False

    def contract(self, keep: int, gone: int, views=frozenset()) -> None:
        """Merge node ``gone`` into ``keep`` (no other path joins them, so it stays a DAG),
        dropping first the edges from ``views`` (views of keep's results that gone read: the
        merged kernel reads them itself)."""
        for m in views:
            self.succs[m].discard(gone)
            self.preds[gone].discard(m)
        for p in self.preds[gone]:
            self.succs[p].discard(gone)
            if p != keep:
                self.succs[p].add(keep)
                self.preds[keep].add(p)
        for s in self.succs[gone]:
            self.preds[s].discard(gone)
            if s != keep:
                self.preds[s].add(keep)
                self.succs[keep].add(s)
        self.preds[gone], self.succs[gone] = set(), set()
        dropped = sum(1 << m for m in views) | 1 << keep | 1 << gone
        self.anc[keep] = (self.anc[keep] | self.anc[gone]) & ~dropped
        self.anc[gone] = 0
        # what keep reaches gains keep's ancestors and keep. A node that has them all already
        # passes them on to everything it reaches, so the walk stops there. Stale bits may stay
        # behind: gone's (never a candidate again, and every test masks it out), and a dropped
        # view's in what gone reached; such a node is reached from keep through a kernel, so
        # any merge with keep that the stale bit could refuse is refused by that path anyway.
        new = self.anc[keep] | 1 << keep
        stack = list(self.succs[keep])
        while stack:
            n = stack.pop()
            if self.anc[n] & new != new:
                self.anc[n] |= new
                stack.extend(self.succs[n])


def _views_between(groups, deps, a, b) -> set:
    """View steps that re-broadcast what kernel ``a`` computes straight into kernel ``b``."""
    results = {groups[a].reduction.id} | groups[a].epilogue
    return {m for m in deps.successors(a) if groups[m].kind is StepKind.VIEW and deps.has_edge(m, b)
            and _viewed(groups[m].roots[0], results) and not deps.path_through_other(m, b)}


def _absorb(into: Group, group: Group, how: Merge) -> None:
    if how is Merge.ROW_EPILOGUE:  # recomputed per point in the row pass, shared values included
        into.row = group.values
        into.roots = sorted([*into.roots, *group.roots], key=lambda v: v.id)
        into.reasons += group.reasons + [f"{group.name} joined as {how}"]
        return
    if how is Merge.EPILOGUE:
        into.epilogue |= {v.id for v in group.values}
    else:
        into.epilogue |= group.epilogue
        into.reduction = into.reduction if into.reduction is not None else group.reduction
    known = {v.id for v in into.values}
    into.inlined = sorted([*into.inlined, *(v for v in group.inlined if v.id not in known)], key=lambda v: v.id)
    into.roots = sorted([*into.roots, *group.roots], key=lambda v: v.id)
    into.reasons += group.reasons + [f"{group.name} joined as {how}"]
