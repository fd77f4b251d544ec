"""Fused elementwise forward + backward over 2^24 float32 elements, against the machine's
bandwidth (a STREAM triad measured in the same run), hand-written numpy and jax.jit:

- the GELU chain: grad of sum(gelu(x) * s + b) (tanh form), transcendental-bound;
- the bandwidth chain: grad of sum((relu(x + bias) + x) * c), memory-bound.

Both read x and write dx: 8 bytes an element is the least traffic; GB/s counts that.
The GELU gradient's error against a float64 reference is printed for graphc and JAX.
"""

import math

import numpy as np

import graphc as gc
from common import jax_or_none, median_time, table, triad_gbps

N = 1 << 24
C = math.sqrt(2 / math.pi)


def gelu_graph(dtype="float32", n=N):
    g = gc.Graph("gelu_chain")
    x = g.input("x", (n,), dtype)
    s, b = g.param("s", (), dtype), g.param("b", (), dtype)
    g.output("loss", gc.sum(gc.gelu(x) * s + b))
    return gc.grad(g, wrt=["x"])


def bandwidth_graph():
    g = gc.Graph("bandwidth_chain")
    x = g.input("x", (N,))
    bias, c = g.param("bias", ()), g.param("c", ())
    g.output("loss", gc.sum((gc.relu(x + bias) + x) * c))
    return gc.grad(g, wrt=["x"])


def numpy_gelu(x, s):
    inner = C * (x + 0.044715 * x * x * x)
    t = np.tanh(inner)
    loss = np.sum(0.5 * x * (1 + t) * s)
    dx = s * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * 0.044715 * x * x))
    return loss, dx


def numpy_bandwidth(x, bias, c):
    z = x + bias
    return np.sum((np.maximum(z, 0) + x) * c), c * ((z > 0) + np.float32(1))


def _graphc_rows(fn, arrays, triad, target=""):
    """graphc with fresh outputs (a new 64 MB array each call: page faults included), and
    writing into a reused output buffer, as the triad does."""
    rows = []
    out = {"grad_x": np.empty(N, np.float32)}
    for name, call in (("graphc", lambda: fn(**arrays)), ("graphc out=", lambda: fn.run(arrays, out=out))):
        t = median_time(call, repeat=10)
        gbps = 8 * N / t / 1e9
        rows.append((name, t, f"{gbps:.1f} GB/s; {100 * gbps / triad:.0f}% of triad{target}"))
    return rows


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N).astype(np.float32)
    s, b = np.float32(1.5), np.float32(0.25)
    triad = triad_gbps()
    gelu = gc.compile(gelu_graph())
    exact = gc.evaluate(gelu_graph("float64"), x=x.astype(np.float64), s=np.float64(s), b=np.float64(b))["grad_x"]
    ours = gelu(x=x, s=s, b=b)["grad_x"]
    err = {"graphc": float(np.max(np.abs(ours - exact)))}
    rows = _graphc_rows(gelu, dict(x=x, s=s, b=b), triad)
    rows.append(("numpy", median_time(lambda: numpy_gelu(x, s), repeat=3), ""))
    jax = jax_or_none()
    if jax:
        import jax.numpy as jnp

        f = jax.jit(jax.value_and_grad(lambda x, s, b: jnp.sum(jax.nn.gelu(x, approximate=True) * s + b)))
        jx = jnp.asarray(x)
        err["jax.jit"] = float(np.max(np.abs(np.asarray(f(jx, s, b)[1]) - exact)))
        rows.append(("jax.jit", median_time(lambda: jax.block_until_ready(f(jx, s, b)), repeat=10), ""))
    print(table(f"GELU chain forward + backward, 2^24 float32 (triad {triad:.1f} GB/s)", rows))
    print("   max |grad - float64 grad|: " + ", ".join(f"{k} {v:.2e}" for k, v in err.items()))

    chain = gc.compile(bandwidth_graph())
    bias, c = np.float32(0.1), np.float32(0.5)
    ref = numpy_bandwidth(x, bias, c)[1]
    assert np.allclose(chain(x=x, bias=bias, c=c)["grad_x"], ref), "graphc disagrees with numpy"
    rows = _graphc_rows(chain, dict(x=x, bias=bias, c=c), triad, " (target >= 80%)")
    rows.append(("numpy", median_time(lambda: numpy_bandwidth(x, bias, c), repeat=5), ""))
    if jax:
        f = jax.jit(jax.value_and_grad(lambda x, bias, c: jnp.sum((jax.nn.relu(x + bias) + x) * c)))
        rows.append(("jax.jit", median_time(lambda: jax.block_until_ready(f(jx, bias, c)), repeat=10), ""))
    print(table(f"bandwidth chain forward + backward, 2^24 float32 (triad {triad:.1f} GB/s)", rows))


if __name__ == "__main__":
    main()
