"""Compile time against graph size: ``gc.compile`` (the passes and kernel source generation;
numba compiles lazily, on the first call) of gradient graphs from about 100 to 5,000 values,
with the time per value, which stays flat when the passes are linear.

Two families: the gradient of an Elman RNN unrolled over T steps (``examples.unrolled_rnn``),
and of a residual MLP of n blocks (``examples.residual_mlp``), each with remat "none" and "sqrt".

    python benchmarks/bench_compile_scaling.py [--sizes 2,8,32,128,320]
"""

import argparse
import time

import graphc as gc
from graphc.examples import residual_mlp, unrolled_rnn


def compile_seconds(graph, remat: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        gc.compile(graph, remat=remat)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2,8,32,128,320")
    sizes = [int(n) for n in parser.parse_args().sizes.split(",")]
    families = {"rnn": lambda n: unrolled_rnn(steps=n, batch=4, d_in=8, hidden=8),
                "residual": lambda n: residual_mlp(blocks=n, width=8, batch=4)}
    print("| graph | size | values | remat | compile (s) | us per value |")
    print("|---|---|---|---|---|---|")
    for family, build in families.items():
        for n in sizes:
            graph = gc.grad(build(n))
            for remat in ("none", "sqrt"):
                seconds = compile_seconds(graph, remat)
                print(f"| {family} | {n} | {len(graph.nodes)} | {remat} | {seconds:.3f} | "
                      f"{seconds / len(graph.nodes) * 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
