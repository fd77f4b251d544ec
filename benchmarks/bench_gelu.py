"""GELU as a user writes it out, ``0.5*x*(1 + tanh(c*(x + 0.044715*x**3)))`` with
c = sqrt(2/pi), forward + backward over 2^24 float32 elements: the loss is sum(gelu(x) * w)
for a weight array w, and each system returns it and its gradient with respect to x.

The same formula, written the same way, runs in graphc (``gc.tanh``), jax.jit
(``jax.value_and_grad``) and PyTorch eager (autograd); numpy has it forward and backward by
hand. The built-ins are timed beside them, like with like: ``gc.gelu`` is this same tanh form
(``approximate=True``, its default), as are ``jax.nn.gelu(approximate=True)`` and
``torch.nn.functional.gelu(approximate="tanh")``. Every result is checked against numpy's
before timing. Each step reads x and w and writes dx: 12 bytes an element is the least traffic.

    python benchmarks/bench_gelu.py          # BENCH_QUICK=1 for a smoke run
"""

import math

import numpy as np

import graphc as gc
from common import (check_and_time, graphc_step, jax_or_none, jax_step, lazy_module, ratio_line, repeats, table,
                    torch_or_none, torch_step)

N = 1 << 24
C = math.sqrt(2 / math.pi)
WRT = ["x"]


def gelu_by_hand(x, tanh):
    """The formula as written, for any framework's arrays and tanh."""
    return 0.5 * x * (1 + tanh(C * (x + 0.044715 * x**3)))


def graph(gelu):
    g = gc.Graph("gelu")
    x, w = g.input("x", (N,)), g.input("w", (N,))
    g.output("loss", gc.sum(gelu(x) * w))
    return gc.grad(g, wrt=WRT)


def numpy_step(x, w):
    x2 = x * x
    t = np.tanh(C * (x + 0.044715 * x2 * x))
    half = 0.5 * (1 + t)
    loss = np.sum(x * half * w)
    dx = w * (half + 0.5 * x * (1 - t * t) * (C * (1 + 3 * 0.044715 * x2)))
    return loss, [dx]


def main():
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal(N, np.float32), "w": rng.uniform(0.5, 1.5, N).astype(np.float32)}
    reference = numpy_step(**arrays)
    loss_atol = 1e-5 * float(np.sum(np.abs(arrays["x"] * arrays["w"])))  # float32 sums of 2^24 terms
    jax, torch = jax_or_none(lazy=True), torch_or_none(lazy=True)  # each system is built and timed in its own process
    steps = [("graphc", lambda: graphc_step(gc.compile(graph(lambda x: gelu_by_hand(x, gc.tanh))), arrays, WRT),
              "by hand"),
             ("graphc gc.gelu", lambda: graphc_step(gc.compile(graph(gc.gelu)), arrays, WRT), "built-in"),
             ("numpy", lambda: lambda: numpy_step(**arrays), "forward and backward by hand")]
    if jax:
        jnp = lazy_module("jax.numpy")

        steps += [("jax.jit", lambda: jax_step(jax, lambda x, w: jnp.sum(gelu_by_hand(x, jnp.tanh) * w), arrays, WRT),
                   "by hand"),
                  ("jax.jit jax.nn.gelu", lambda: jax_step(jax, lambda x, w: jnp.sum(
                      jax.nn.gelu(x, approximate=True) * w), arrays, WRT), "built-in, approximate=True")]
    if torch:
        F = lazy_module("torch.nn.functional")
        steps += [("pytorch", lambda: torch_step(torch, lambda x, w: (gelu_by_hand(x, torch.tanh) * w).sum(),
                                                 arrays, WRT), "by hand, eager"),
                  ("pytorch F.gelu", lambda: torch_step(torch, lambda x, w: (F.gelu(x, approximate="tanh") * w).sum(),
                                                        arrays, WRT), "built-in, approximate='tanh'")]
    title = "GELU (tanh form) forward + backward, 2^24 float32, loss sum(gelu(x) * w)"
    rows = check_and_time(title, steps, reference, WRT, repeats(10), rtol=1e-4, atol=1e-5, loss_atol=loss_atol)
    rows = [(name, t, f"{12 * N / t / 1e9:.1f} GB/s; {note}") for name, t, note in rows]
    print(table(title, rows))
    print(ratio_line(rows, "graphc", "jax.jit", "both by hand; target <= 0.35x"))
    print(ratio_line(rows, "graphc gc.gelu", "jax.jit jax.nn.gelu", "both built-in"))
    print(ratio_line(rows, "graphc", "graphc gc.gelu", "by hand against the built-in"))


if __name__ == "__main__":
    main()
