"""Memory planning: every buffer's live interval and its offset in one arena.

Loop kernels and library calls write buffers; views and inputs need none. A buffer is live
from the step that writes it to the last step that reads it, directly or through a view of it.
Graph outputs are returned to the caller, so they are fresh arrays each call; every other
buffer gets a fixed offset in one arena, allocated once per executable, packed so that buffers
whose lifetimes overlap never overlap in memory (first fit, largest first, 64-byte aligned).
The planned peak counts the arena's live bytes and the outputs made so far, step by step.
"""

from dataclasses import dataclass

from .fusion import group_reads, op_class

ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict  # value id -> arena offset (intermediate buffers)
    fresh: set  # value ids written to a fresh array each call (graph outputs)
    lifetimes: dict  # value id -> (first step, last step)
    arena_bytes: int
    peak_bytes: int
    live_bytes: list  # planned live bytes after each step


def _base(v):
    """The buffer (or input) a view reads from."""
    while op_class(v) == "view":
        v = v.inputs[0]
    return v


def plan_memory(graph, steps) -> MemoryPlan:
    outputs = {v.id for v in graph.outputs.values()}
    writes = {}
    for k, g in enumerate(steps):
        if g.kind != "view":
            for v in g.roots:
                writes[v.id] = (k, v)
    last = {vid: k for vid, (k, _) in writes.items()}
    by_id = {v.id: v for v in graph.nodes}
    for k, g in enumerate(steps):
        for leaf in group_reads(g):
            base = _base(by_id[leaf])
            if base.id in last:
                last[base.id] = max(last[base.id], k)
    for v in graph.outputs.values():
        base = _base(v)
        if base.id in last:
            last[base.id] = len(steps)
    lifetimes = {vid: (k, last[vid]) for vid, (k, _) in writes.items()}
    fresh = {vid for vid in writes if vid in outputs}
    offsets = _pack({vid: (lifetimes[vid], by_id[vid].type.nbytes) for vid in writes if vid not in fresh})
    arena = max((offsets[vid] + by_id[vid].type.nbytes for vid in offsets), default=0)
    live = [sum(by_id[vid].type.nbytes for vid, (a, b) in lifetimes.items()
                if a <= k and (b >= k or vid in fresh)) for k in range(len(steps))]
    return MemoryPlan(offsets, fresh, lifetimes, arena, max(live, default=0), live)


def _pack(buffers: dict) -> dict:
    """First-fit offsets, largest buffers first; buffers live at once never overlap."""
    placed = []  # (offset, end, first, last)
    offsets = {}
    for vid, ((first, last), size) in sorted(buffers.items(), key=lambda kv: (-kv[1][1], kv[0])):
        clashes = sorted((o, e) for o, e, f, l in placed if f <= last and first <= l)
        offset = 0
        for o, e in clashes:
            if offset + size <= o:
                break
            offset = max(offset, -(-e // ALIGN) * ALIGN)
        placed.append((offset, offset + size, first, last))
        offsets[vid] = offset
    return offsets
