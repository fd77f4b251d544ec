"""Compile time against graph size: a chain of n elementwise ops (tanh, sin, scale, shift,
sigmoid, repeated) that fusion would put in one kernel, compiled and called once in a fresh
process with an empty kernel cache. Fusion splits kernels past ``MAX_KERNEL_OPS`` ops, since
numba's time per kernel grows faster than its size; seconds per op must stay about flat.

    python benchmarks/bench_chain_compile.py [n ...]     # default 50 100 200 400 800
"""

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
import graphc as gc
n = int(sys.argv[1])
g = gc.Graph("chain")
h = g.input("x", (1000,))
ops = [gc.tanh, gc.sin, lambda v: v * 1.5, lambda v: v + 0.25, gc.sigmoid]
for i in range(n):
    h = ops[i % len(ops)](h)
g.output("y", h)
t = time.perf_counter()
fn = gc.compile(g)
fn(x=np.ones(1000, np.float32))
print(json.dumps({"seconds": time.perf_counter() - t, "kernels": fn.stats["n_loop_kernels"]}))
"""


def cold(n: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True,
                             env={**os.environ, "GRAPHC_CACHE_DIR": cache})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [50, 100, 200, 400, 800]
    print("== compile time against graph size (cold cache, fresh process, first call included)")
    print(f"   {'ops':>6}{'kernels':>9}{'seconds':>10}{'ms per op':>11}")
    for n in sizes:
        r = cold(n)
        print(f"   {n:>6}{r['kernels']:>9}{r['seconds']:>10.2f}{r['seconds'] / n * 1e3:>11.1f}")


if __name__ == "__main__":
    main()
