"""Per-call overhead: what a call costs beyond its kernels, on a 1-kernel graph (``x * 2 + 1``
over 16 float32) and on the seed two-layer train step (10 kernels, 5 matmuls).

For the 1-kernel graph: ``fn(x=X)`` against the same numba kernel called directly with its
output allocated (the floor a driver could reach), numpy's ``X * 2 + 1``, jax.jit and PyTorch
eager.

    python benchmarks/bench_call_overhead.py
"""

import numpy as np

import graphc as gc
from common import jax_or_none, median_time, table, torch_or_none
from graphc.codegen.cache import load_kernel
from graphc.examples import sgd_step, two_layer

REPEAT = 5000


def main():
    g = gc.Graph("one_kernel")
    g.output("y", g.input("x", (16,)) * 2 + 1)
    fn = gc.compile(g, eager=True)
    x = np.arange(16, dtype=np.float32)
    (ks,) = fn.kernels.values()
    kernel, out = load_kernel(ks.source), np.empty(16, np.float32)
    rows = [("graphc", median_time(lambda: fn(x=x), repeat=REPEAT), "fn(x=X)"),
            ("graphc kernel alone", median_time(lambda: kernel(np.empty(16, np.float32), x), repeat=REPEAT),
             "the numba dispatcher, output allocated"),
            ("numpy", median_time(lambda: x * 2 + 1, repeat=REPEAT), "X * 2 + 1")]
    jax = jax_or_none()
    if jax:
        f = jax.jit(lambda x: x * 2 + 1)
        jx = jax.numpy.asarray(x)
        rows.append(("jax.jit", median_time(lambda: jax.block_until_ready(f(jx)), repeat=REPEAT), ""))
    torch = torch_or_none()
    if torch:
        tx = torch.from_numpy(x)
        rows.append(("pytorch eager", median_time(lambda: tx * 2 + 1, repeat=REPEAT), ""))
    np.testing.assert_array_equal(fn(x=x)["y"], x * 2 + 1)
    del out
    print(table("per-call overhead: a 1-kernel graph, 16 float32", rows, unit="us"))
    print()

    rng = np.random.default_rng(0)
    graph = two_layer()
    arrays = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in graph.arguments.items()}
    step = gc.compile(sgd_step(gc.grad(graph), 1e-4), eager=True)
    n_steps = sum(1 for s in step.steps if s.kind != "view")
    print(f"== the two-layer train step (64x1000 -> 100 -> 10): {n_steps} kernels and library calls")
    print(f"   call {median_time(lambda: step(**arrays), repeat=500) * 1e6:.1f} us "
          f"(numpy, jax.jit and PyTorch beside it: bench_two_layer.py)")

if __name__ == "__main__":
    main()
