"""``compile``: the pass pipeline from a graph to an executable.

verify -> simplify -> remat -> fuse -> schedule -> memory plan -> codegen (numba CPU or CUDA:
the same plan for both targets). Each pass takes the IR (and
the annotations of the passes before it) and returns the same; with ``dump=DIR`` (or the
environment variable ``GRAPHC_DUMP``) the text IR after every pass is written to DIR, annotated
with the kernel each value belongs to and the arena offset of each buffer, together with every
generated kernel's source.
"""

import hashlib
import os

from ..codegen import numba_cpu, numba_cuda
from ..errors import CompileError
from ..ir.ops import graph_flops
from ..ir.text import to_text
from ..ir.verify import verify
from ..runtime import cuda as cuda_runtime
from ..runtime.executable import Executable
from .fusion import fuse as fuse_pass
from .fusion import VIEWS, group_reads
from .memory import plan_memory, saved_values
from .budget import Budget, search
from .remat import STRATEGIES, forward_ids, rematerialize
from .schedule import schedule
from .simplify import simplify

TARGETS = ("cpu", "cuda", "auto")
# the simulator runs a Python thread per CUDA thread (about a millisecond each): small launches
SIMULATOR_LAUNCH = {"threads": 4, "max_blocks": 2}


def compile(graph, target="cpu", fuse=True, remat="none", dump=None, eager=False) -> Executable:
    """Compile ``graph`` into an executable: ``fn(**arrays) -> {output: ndarray}``. Numba compiles
    the kernels on the first call; ``eager=True`` compiles them (or loads them from the cache)
    before returning, so that no call does (``fn.warm()`` later does the same)."""
    if not isinstance(eager, bool):
        raise CompileError(f"eager={eager!r}: expected True or False")
    target = _target(target)
    if not isinstance(remat, Budget) and (not isinstance(remat, str) or remat not in STRATEGIES):
        raise CompileError(f"remat {remat!r} is not a strategy; choose one of {', '.join(STRATEGIES)} "
                           f"or gc.Budget(bytes=N)")
    dump = dump or os.environ.get("GRAPHC_DUMP")
    log = _Dump(dump)
    verify(graph)
    log.write("0-input", to_text(graph))
    g = simplify(graph)
    log.write("1-simplify", to_text(g))
    re = _budget(g, remat, fuse) if isinstance(remat, Budget) else rematerialize(g, remat)
    g = re.graph
    log.write("2-remat", to_text(g, notes=_remat_notes(re)))
    fusion, steps, memory = _plan(re, fuse)
    log.write("3-fuse", to_text(g, notes=_group_notes(fusion.groups)))
    log.write("4-schedule", to_text(g, notes=_group_notes(steps)))
    log.write("5-memory", to_text(g, notes=_memory_notes(g, memory, steps)))
    kernels, copies = _codegen(g, steps, memory, target)
    for name, ks in kernels.items():
        log.write(f"6-codegen-{name}", ks.source)
    saved = saved_values(g, steps, memory)
    stats = {
        "n_kernels": sum(1 for s in steps if s.kind != "view"),
        "n_loop_kernels": len(kernels),
        "n_library_calls": sum(1 for s in steps if s.kind == "library"),
        "n_values": len(g.nodes),
        "flops": graph_flops(g),
        "peak_bytes": memory.peak_bytes,
        "arena_bytes": memory.arena_bytes,
        "saved_bytes": sum(g.nodes[i].type.nbytes for i in saved),
        "recompute_flops": re.recompute_flops,
        "forward_flops": re.forward_flops,
        "remat": remat if isinstance(remat, str) else f"Budget(bytes={remat.bytes})",
        "remat_note": re.note,
        "target": target,
    }
    report = _report(graph, g, steps, memory, stats, kernels if target == "cpu" else {})
    if target == "cuda":
        fn = cuda_runtime.CudaExecutable(g, steps, kernels, memory, stats, report, _residuals(g, saved, re), copies)
    else:
        fn = Executable(g, steps, kernels, memory, stats, report, _residuals(g, saved, re))
    return fn.warm() if eager else fn


def _target(target: str) -> str:
    """"auto" is CUDA on a usable GPU, else the CPU; "cuda" needs a GPU or numba's simulator."""
    if target not in TARGETS:
        raise CompileError(f"target {target!r} is not available; graphc compiles for {', '.join(TARGETS)}")
    if target == "auto":
        return "cuda" if numba_cuda.gpu_available() else "cpu"
    if target == "cuda" and not (numba_cuda.simulator() or numba_cuda.gpu_available()):
        raise CompileError("target 'cuda': numba.cuda finds no usable NVIDIA GPU on this machine (driver and "
                           "device); compile for target='cpu', or set NUMBA_ENABLE_CUDASIM=1 before starting "
                           "Python to run the CUDA kernels in numba's simulator")
    return target


def _codegen(g, steps, memory, target: str) -> tuple[dict, dict]:
    """Kernels by step name, and (CUDA) kernels copying outputs that no step writes."""
    by_id = {v.id: v for v in g.nodes}
    leaves = {s.name: [by_id[i] for i in sorted(group_reads(s))] for s in steps}
    if target == "cpu":
        blas = any(v.op == "matmul" for s in steps if s.kind == "library" for v in s.roots)
        return {s.name: numba_cpu.kernel_source(s, leaves[s.name], blas) for s in steps if s.kind == "loop"}, {}
    launch = SIMULATOR_LAUNCH if numba_cuda.simulator() else {}
    kernels = {s.name: numba_cuda.kernel_source(s, leaves[s.name], **launch) for s in steps if s.kind != "view"}
    written = {v.id for s in steps if s.kind != "view" for v in s.roots}
    copies = {v.id: numba_cuda.view_copy_kernel(v, **launch) for v in g.outputs.values() if v.id not in written}
    return kernels, copies


def _plan(re, fuse: bool):
    """Fuse, schedule and plan the memory of a rewritten graph: (fusion, steps, memory)."""
    g = re.graph
    fusion = fuse_pass(g, fuse, apart=(forward_ids(g), re.chain, re.late) if re.recomputed else ())
    steps = schedule(g, fusion)
    return fusion, steps, plan_memory(g, steps)


_PEAKS: dict = {}  # (rewritten graph's text digest, fuse) -> planned peak: budgets of one graph share plans
_PEAKS_LIMIT = 4096


def _budget(g, budget, fuse: bool):
    """Search for the cheapest plan under ``budget``, checking each against its real planned
    peak. Peaks are remembered for the process, so several budgets on one graph (a profile)
    plan each candidate once."""
    _, steps, memory = _plan(rematerialize(g, "none"), fuse)
    saved = {i: g.nodes[i].type.nbytes for i in saved_values(g, steps, memory)}

    def plan_peak(re) -> int:
        key = (hashlib.sha256(to_text(re.graph).encode()).digest(), fuse)
        if key not in _PEAKS:
            if len(_PEAKS) >= _PEAKS_LIMIT:
                _PEAKS.clear()
            _PEAKS[key] = _plan(re, fuse)[2].peak_bytes
        return _PEAKS[key]
    return search(g, budget, (memory.peak_bytes, saved), plan_peak)


def _residuals(g, saved, re) -> list:
    """What the backward gets from the forward: each value kept, and each one recomputed."""
    rows = [(vid, "saved") for vid in saved]
    rows += [(vid, "recomputed") for vid in sorted(set(re.recomputed.values())) if g.nodes[vid].op not in VIEWS]
    return [{"value": vid, "op": g.nodes[vid].op, "shape": g.nodes[vid].shape, "dtype": g.nodes[vid].dtype,
             "bytes": g.nodes[vid].type.nbytes, "how": how} for vid, how in sorted(rows)]


class _Dump:
    def __init__(self, directory):
        self.directory = directory
        if directory:
            os.makedirs(directory, exist_ok=True)

    def write(self, name: str, text: str) -> None:
        if self.directory:
            suffix = ".py" if "codegen" in name else ".txt"
            with open(os.path.join(self.directory, name + suffix), "w", encoding="utf-8") as f:
                f.write(text)


def _remat_notes(re) -> dict:
    notes = {vid: "kept for the backward" for vid in re.kept}
    notes.update({vid: f"recomputes %{old}" for vid, old in re.recomputed.items()})
    return notes


def _group_notes(groups) -> dict:
    notes = {}
    for g in groups:
        for v in g.values:
            notes[v.id] = f"{g.name} ({g.kind}){' root' if v.id in {r.id for r in g.roots} else ''}"
    return notes


def _memory_notes(graph, memory, steps) -> dict:
    notes = _group_notes(steps)
    for vid, offset in memory.offsets.items():
        first, last = memory.lifetimes[vid]
        notes[vid] += f"; arena [{offset}, +{graph.nodes[vid].type.nbytes}) live steps {first}-{last}"
    for vid in memory.fresh:
        notes[vid] += "; fresh output array"
    return notes


def _report(source, g, steps, memory, stats, kernels) -> str:
    lines = [f"graphc compile report: graph {source.name!r}",
             f"  passes: verify, simplify, remat ({len(source.nodes)} -> {len(g.nodes)} values), fuse, schedule, "
             f"memory plan, codegen (numba {stats['target']})",
             f"  steps: {len(steps)} ({stats['n_loop_kernels']} fused loop kernels, "
             f"{stats['n_library_calls']} library calls, {len(steps) - stats['n_kernels']} views)",
             f"  flops: {stats['flops']:,}   planned peak: {stats['peak_bytes']:,} bytes "
             f"(arena {stats['arena_bytes']:,} bytes)",
             f"  remat {stats['remat']!r}: {stats['saved_bytes']:,} bytes kept for the backward, "
             f"{stats['recompute_flops']:,} flops recomputed"]
    lines += [f"  {stats['remat_note']}"] if stats["remat_note"] else []
    lines += ["", "  schedule:"]
    for s in steps:
        if s.kind == "view":
            continue
        ops = " ".join(f"%{v.id}:{v.op}" for v in s.values)
        lines.append(f"    {s.name:<5} {s.kind:<8} {ops}")
        lines += [f"          - {r}" for r in s.reasons]
        calls = kernels[s.name].scalar_calls if s.name in kernels else []
        if calls:
            lines.append("          - scalar library calls in the loop, which LLVM cannot vectorize: "
                         + ", ".join(f"%{v.id} {v.op} ({v.dtype})" for v in calls))
    return "\n".join(lines) + "\n"
