"""The compile report: what the passes did to a graph, step by step, and why (``fn.report()``)."""

from .passes.fusion import StepKind


def compile_report(planned, stats, kernels) -> str:
    """``planned``: the passes' StepPlan; ``stats``: its Stats; ``kernels``: CPU kernels by step
    name, whose scalar library calls are listed (empty for CUDA)."""
    source, steps = planned.source, planned.steps
    n_views = len(steps) - stats.n_kernels
    lines = [f"graphc compile report: graph {source.name!r}",
             f"  passes: verify, simplify, remat ({len(source.nodes)} -> {len(planned.graph.nodes)} values), fuse, "
             f"schedule, memory plan, codegen (numba {stats.target})",
             f"  steps: {len(steps)} ({stats.n_loop_kernels} fused loop kernels, "
             f"{stats.n_library_calls} library calls, {n_views} views)",
             f"  flops: {stats.flops:,}   planned peak: {stats.peak_bytes:,} bytes "
             f"(arena {stats.arena_bytes:,} bytes)",
             f"  remat {stats.remat!r}: {stats.saved_bytes:,} bytes kept for the backward, "
             f"{stats.recompute_flops:,} flops recomputed"]
    lines += [f"  {stats.remat_note}"] if stats.remat_note else []
    lines += ["", "  schedule:"]
    for step in steps:
        if step.kind is StepKind.VIEW:
            continue
        ops = " ".join(f"%{v.id}:{v.op}" for v in step.values)
        lines.append(f"    {step.name:<5} {step.kind:<8} {ops}")
        lines += [f"          - {r}" for r in step.reasons]
        calls = kernels[step.name].scalar_calls if step.name in kernels else []
        if calls:
            lines.append("          - scalar library calls in the loop, which LLVM cannot vectorize: "
                         + ", ".join(f"%{v.id} {v.op} ({v.dtype})" for v in calls))
    return "\n".join(lines) + "\n"
