"""Memory planning: every buffer's live interval and its offset in one arena.

Loop kernels and library calls write buffers; views and inputs need none. A buffer is live
from the step that writes it to the last step that reads it, directly or through a view of it.
Graph outputs are returned to the caller, so they are fresh arrays each call; every other
buffer gets a fixed offset in one arena, allocated once per executable, packed so that buffers
whose lifetimes overlap never overlap in memory (first fit, 64-byte aligned; the smallest of a
few placement orders). The planned peak is what a call holds at its fullest: the arena plus
the outputs. ``live_bytes`` is the timeline of bytes in use after each step; its maximum is
the least any packing could reach.
"""

from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from ..ir.ops import base_of
from .analysis import forward_ids
from .fusion import StepKind, group_reads

ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict  # value id -> arena offset (intermediate buffers)
    fresh: set  # value ids written to a fresh array each call (graph outputs)
    lifetimes: dict  # value id -> (first step, last step)
    arena_bytes: int
    peak_bytes: int
    live_bytes: list  # planned live bytes after each step
    output_bytes: int = 0


def plan_memory(graph, steps) -> MemoryPlan:
    outputs = {v.id for v in graph.outputs.values()}
    writes = {}
    for k, step in enumerate(steps):
        if step.kind is not StepKind.VIEW:
            for v in step.roots:
                writes[v.id] = (k, v)
    last = {vid: k for vid, (k, _) in writes.items()}
    by_id = {v.id: v for v in graph.nodes}
    for k, step in enumerate(steps):
        for leaf in group_reads(step):
            base = base_of(by_id[leaf])
            if base.id in last:
                last[base.id] = max(last[base.id], k)
    for v in graph.outputs.values():
        base = base_of(v)
        if base.id in last:
            last[base.id] = len(steps)
    lifetimes = {vid: (k, last[vid]) for vid, (k, _) in writes.items()}
    fresh = {vid for vid in writes if vid in outputs}
    buffers = {vid: (lifetimes[vid], by_id[vid].type.nbytes) for vid in writes if vid not in fresh}
    orders = (lambda kv: (-kv[1][1], kv[0]), lambda kv: (kv[1][0][0], -kv[1][1]),
              lambda kv: (-(kv[1][0][1] - kv[1][0][0]) * kv[1][1], kv[0]))
    offsets = min((_pack(buffers, order) for order in orders), key=lambda o: _extent(o, by_id))
    arena = _extent(offsets, by_id)
    outputs = sum(by_id[vid].type.nbytes for vid in fresh)
    live = _live_bytes(lifetimes, fresh, by_id, len(steps))
    return MemoryPlan(offsets, fresh, lifetimes, arena, arena + outputs, live, outputs)


def _live_bytes(lifetimes: dict, fresh: set, by_id, n_steps: int) -> list:
    """Bytes live after each step: a buffer from the step that writes it through its last
    reader (an output to the end), summed in one sweep over the steps."""
    change = [0] * (n_steps + 1)
    for vid, (first, last) in lifetimes.items():
        size = by_id[vid].type.nbytes
        change[first] += size
        change[n_steps if vid in fresh else min(last, n_steps - 1) + 1] -= size
    return list(accumulate(change[:n_steps]))


def _extent(offsets: dict, by_id) -> int:
    return max((offsets[vid] + by_id[vid].type.nbytes for vid in offsets), default=0)


def saved_values(graph, steps, memory) -> list:
    """Ids of the forward buffers that backward steps read: the activations kept for the backward."""
    forward = forward_ids(graph)
    by_id = {v.id: v for v in graph.nodes}
    saved = set()
    for step in steps:
        if step.kind is StepKind.VIEW or all(v.id in forward for v in step.values):
            continue
        for leaf in group_reads(step):
            base = base_of(by_id[leaf])
            if base.id in forward and (base.id in memory.offsets or base.id in memory.fresh):
                saved.add(base.id)
    return sorted(saved)


def _pack(buffers: dict, order) -> dict:
    """First-fit offsets in the given order; buffers live at once never overlap. The buffers
    already placed are columns of arrays, so finding those whose lifetimes clash is one
    vectorized comparison per buffer, not a Python loop over all of them, and so is the search
    for the lowest gap among the clashing ones."""
    items = sorted(buffers.items(), key=order)
    n = len(items)
    firsts, lasts = np.empty(n, np.int64), np.empty(n, np.int64)
    starts, ends = np.empty(n, np.int64), np.empty(n, np.int64)
    offsets = {}
    for k, (vid, ((first, last), size)) in enumerate(items):
        clash = np.flatnonzero((firsts[:k] <= last) & (lasts[:k] >= first))
        offset = 0
        if clash.size:  # the lowest gap: below the first clashing start that clears every end before it
            by_start = clash[np.argsort(starts[clash], kind="stable")]
            cleared = np.maximum.accumulate(-(-ends[by_start] // ALIGN) * ALIGN)
            before = np.concatenate(([0], cleared[:-1]))
            fits = np.flatnonzero(before + size <= starts[by_start])
            offset = int(before[fits[0]] if fits.size else cleared[-1])
        firsts[k], lasts[k], starts[k], ends[k] = first, last, offset, offset + size
        offsets[vid] = offset
    return offsets
