"""``compile``: the driver from a graph to an executable.

The passes (``passes/pipeline.py``) make a target-neutral plan of steps; a code generator
(``codegen/numba_cpu.py`` or ``codegen/numba_cuda.py``) makes each step's kernel; ``Plan``
holds it all, and ``Executable`` or ``CudaExecutable`` runs it. With ``dump=DIR`` (or the
environment variable ``GRAPHC_DUMP``) the text IR after every pass is written to DIR,
annotated with the kernel each value belongs to and the arena offset of each buffer, together
with every generated kernel's source.
"""

import os

from .codegen import numba_cpu, numba_cuda
from .errors import CompileError
from .ir.ops import graph_flops
from .passes.budget import Budget
from .passes.fusion import StepKind, group_reads
from .passes.pipeline import StepPlan, plan_graph
from .passes.remat import STRATEGIES
from .report import compile_report
from .runtime.blas import share_threads
from .runtime.cuda import CudaExecutable
from .runtime.executable import Executable
from .runtime.plan import Plan, Stats

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
    dump = _Dump(dump or os.environ.get("GRAPHC_DUMP"))
    planned = plan_graph(graph, fuse, remat, log=dump.write)
    kernels, copies = generate(planned.graph, planned.steps, target)
    for name, ks in kernels.items():
        dump.write(f"6-codegen-{name}", ks.source)
    stats = _stats(planned, kernels, remat, target)
    plan = Plan(planned, kernels, stats, compile_report(planned, stats, kernels if target == "cpu" else {}), copies)
    fn = CudaExecutable(plan) if target == "cuda" else Executable(plan)
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


def generate(graph, steps, target: str) -> tuple[dict, dict]:
    """Kernels by step name, and (CUDA) kernels copying outputs that no step writes."""
    by_id = {v.id: v for v in graph.nodes}
    leaves = {s.name: [by_id[i] for i in sorted(group_reads(s))] for s in steps}
    if target == "cpu":
        # beside OpenBLAS's own spinning pool, loop kernels stay serial; on a shared pool they thread
        blas = any(v.op == "matmul" for s in steps if s.kind is StepKind.LIBRARY for v in s.roots)
        apart = blas and not share_threads()
        return {s.name: numba_cpu.kernel_source(s, leaves[s.name], apart) for s in steps if numba_cpu.has_kernel(s)}, {}
    launch = SIMULATOR_LAUNCH if numba_cuda.simulator() else {}
    runs = [s for s in steps if s.kind is not StepKind.VIEW]
    kernels = {s.name: numba_cuda.kernel_source(s, leaves[s.name], **launch) for s in runs}
    written = {v.id for s in runs for v in s.roots}
    copies = {v.id: numba_cuda.view_copy_kernel(v, **launch) for v in graph.outputs.values() if v.id not in written}
    return kernels, copies


def _stats(planned: StepPlan, kernels: dict, remat, target: str) -> Stats:
    graph, steps, memory = planned.graph, planned.steps, planned.memory
    return Stats(
        n_kernels=sum(1 for s in steps if s.kind is not StepKind.VIEW),
        n_loop_kernels=sum(1 for s in steps if s.kind is StepKind.LOOP),
        n_library_calls=sum(1 for s in steps if s.kind is StepKind.LIBRARY),
        n_values=len(graph.nodes),
        flops=graph_flops(graph),
        peak_bytes=memory.peak_bytes,
        arena_bytes=memory.arena_bytes,
        saved_bytes=sum(graph.nodes[i].type.nbytes for i in planned.saved),
        recompute_flops=planned.remat.recompute_flops,
        forward_flops=planned.remat.forward_flops,
        remat=remat if isinstance(remat, str) else f"Budget(bytes={remat.bytes})",
        remat_note=planned.remat.note,
        target=target,
    )


class _Dump:
    """Writes each pass's text (and each kernel's source) into a directory, if one is given."""

    def __init__(self, directory):
        self.directory = directory
        if directory:
            os.makedirs(directory, exist_ok=True)

    def write(self, name: str, text: str) -> None:
        if self.directory:
            suffix = ".py" if "codegen" in name else ".txt"
            with open(os.path.join(self.directory, name + suffix), "w", encoding="utf-8") as f:
                f.write(text)
