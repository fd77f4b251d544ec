"""The target-neutral passes, in order: verify -> simplify -> layout -> remat -> fuse ->
schedule -> memory plan. ``plan_graph`` runs them and returns a ``StepPlan``; the compiler driver
(``graphc/compiler.py``) gives it to a code generator. ``log(name, text)``, when given, gets
the text IR after every pass, annotated with the kernel each value belongs to and the arena
offset of each buffer.
"""

import hashlib
from dataclasses import dataclass

from ..ir.graph import Graph
from ..ir.ops import VIEWS
from ..ir.printing import to_text
from ..ir.verify import verify
from .analysis import forward_ids
from .budget import Budget, search
from .fusion import Fusion
from .fusion import fuse as fuse_pass
from .layout import materialize
from .memory import MemoryPlan, saved_values
from .remat import Remat, rematerialize
from .schedule import schedule
from .simplify import simplify


@dataclass(frozen=True)
class StepPlan:
    """What the passes made of a graph: the rewritten graph, how remat rewrote it, the fused
    groups, their execution order (``steps``), the memory plan and the activations it keeps."""

    source: Graph  # the graph as given
    graph: Graph  # simplified and rematerialized: what the steps compute
    remat: Remat
    fusion: Fusion
    steps: list
    memory: MemoryPlan
    saved: list  # ids of the forward buffers the backward reads

    @property
    def residuals(self) -> list:
        """What the backward gets from the forward: each value kept, and each one recomputed."""
        nodes = self.graph.nodes
        rows = [(vid, "saved") for vid in self.saved]
        rows += [(vid, "recomputed") for vid in sorted(set(self.remat.recomputed.values()))
                 if nodes[vid].op not in VIEWS]
        return [{"value": vid, "op": nodes[vid].op, "shape": nodes[vid].shape, "dtype": nodes[vid].dtype,
                 "bytes": nodes[vid].type.nbytes, "how": how} for vid, how in sorted(rows)]


def plan_graph(graph, fuse: bool = True, remat="none", log=None) -> StepPlan:
    """Run the passes on ``graph``; ``remat`` is a strategy name or a ``Budget``."""
    log = log or (lambda name, text: None)
    verify(graph)
    log("0-input", to_text(graph))
    simplified = materialize(simplify(graph))
    log("1-simplify", to_text(simplified))
    rewritten = _budget(simplified, remat, fuse) if isinstance(remat, Budget) else rematerialize(simplified, remat)
    new = rewritten.graph
    log("2-remat", to_text(new, notes=_remat_notes(rewritten)))
    fusion, steps, memory = plan_steps(rewritten, fuse)
    log("3-fuse", to_text(new, notes=_group_notes(fusion.groups)))
    log("4-schedule", to_text(new, notes=_group_notes(steps)))
    log("5-memory", to_text(new, notes=_memory_notes(new, memory, steps)))
    return StepPlan(graph, new, rewritten, fusion, steps, memory, saved_values(new, steps, memory))


def plan_steps(remat: Remat, fuse: bool) -> tuple:
    """Fuse, schedule and plan the memory of a rewritten graph: (fusion, steps, memory)."""
    graph = remat.graph
    fusion = fuse_pass(graph, fuse, apart=(forward_ids(graph), remat.chain, remat.late) if remat.recomputed else ())
    steps, memory = schedule(graph, fusion)
    return fusion, steps, memory


_PEAKS: dict = {}  # (rewritten graph's text digest, fuse) -> planned peak: budgets of one graph share plans
_PEAKS_LIMIT = 4096


def _budget(graph, budget, fuse: bool) -> Remat:
    """Search for the cheapest plan under ``budget``, checking each against its real planned
    peak. Peaks are remembered for the process, so several budgets on one graph (a profile)
    plan each candidate once."""
    _, steps, memory = plan_steps(rematerialize(graph, "none"), fuse)
    saved = {i: graph.nodes[i].type.nbytes for i in saved_values(graph, steps, memory)}

    def plan_peak(candidate: Remat) -> int:
        key = (hashlib.sha256(to_text(candidate.graph).encode()).digest(), fuse)
        if key not in _PEAKS:
            if len(_PEAKS) >= _PEAKS_LIMIT:
                _PEAKS.clear()
            _PEAKS[key] = plan_steps(candidate, fuse)[2].peak_bytes
        return _PEAKS[key]
    return search(graph, budget, (memory.peak_bytes, saved), plan_peak)


def _remat_notes(remat: Remat) -> dict:
    notes = {vid: "kept for the backward" for vid in remat.kept}
    notes.update({vid: f"recomputes %{old}" for vid, old in remat.recomputed.items()})
    return notes


def _group_notes(groups) -> dict:
    notes = {}
    for group in groups:
        roots = {r.id for r in group.roots}
        for v in group.values:
            notes[v.id] = f"{group.name} ({group.kind}){' root' if v.id in roots else ''}"
    return notes


def _memory_notes(graph, memory, steps) -> dict:
    notes = _group_notes(steps)
    for vid, offset in memory.offsets.items():
        first, last = memory.lifetimes[vid]
        notes[vid] += f"; arena [{offset}, +{graph.nodes[vid].type.nbytes}) live steps {first}-{last}"
    for vid in memory.fresh:
        notes[vid] += "; fresh output array"
    return notes
