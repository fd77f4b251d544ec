"""Row-wise composites forward + backward on 4096 x 256 float32, graphc against hand-written
numpy (forward and backward), jax.jit and PyTorch eager, each checked against numpy first:

- softmax cross-entropy, ``gc.cross_entropy(logits, labels)`` with int64 labels (mean over the
  rows): the loss and its gradient with respect to the logits; jax as log_softmax and
  take_along_axis, PyTorch ``F.cross_entropy``;
- layer norm, ``gc.layer_norm(x, gamma, beta)`` over the last axis (eps 1e-5): the loss
  sum(layer_norm(x) * dy) for a fixed cotangent dy, and its gradients with respect to x, gamma
  and beta; jax written out, PyTorch ``F.layer_norm``.

    python benchmarks/bench_rows.py          # BENCH_QUICK=1 for a smoke run
"""

import numpy as np

import graphc as gc
from common import (check_and_time, graphc_step, jax_or_none, jax_step, lazy_module, print_peers, repeats,
                    torch_or_none, torch_step)

ROWS, COLS = 4096, 256
EPS = 1e-5
CE_WRT, LN_WRT = ["logits"], ["x", "gamma", "beta"]


def cross_entropy_graph():
    g = gc.Graph("cross_entropy")
    g.output("loss", gc.cross_entropy(g.input("logits", (ROWS, COLS)), g.input("labels", (ROWS,), "int64")))
    return gc.grad(g, wrt=CE_WRT)


def layer_norm_graph():
    g = gc.Graph("layer_norm")
    x, dy = g.input("x", (ROWS, COLS)), g.input("dy", (ROWS, COLS))
    y = gc.layer_norm(x, g.param("gamma", (COLS,)), g.param("beta", (COLS,)), eps=EPS)
    g.output("loss", gc.sum(y * dy))
    return gc.grad(g, wrt=LN_WRT)


def numpy_cross_entropy(logits, labels):
    rows = np.arange(len(labels))
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) - z[rows, labels])
    grad = e / s
    grad[rows, labels] -= 1
    grad /= len(labels)
    return loss, [grad]


def numpy_layer_norm(x, dy, gamma, beta):
    xc = x - x.mean(axis=1, keepdims=True)
    rstd = 1 / np.sqrt(np.mean(xc * xc, axis=1, keepdims=True) + np.float32(EPS))
    xhat = xc * rstd
    loss = np.sum((xhat * gamma + beta) * dy)
    dxhat = dy * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * np.mean(dxhat * xhat, axis=1, keepdims=True))
    return loss, [dx, np.sum(dy * xhat, axis=0), dy.sum(axis=0)]


def jax_layer_norm(jnp, x, gamma, beta):
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    return xc / jnp.sqrt(jnp.mean(xc * xc, axis=-1, keepdims=True) + EPS) * gamma + beta


def bench(title, graph, numpy_fn, arrays, wrt, peers, loss_atol):
    """One op's table: graphc, numpy, then ``peers`` [(name, make_step, note)] where installed."""
    steps = [("graphc", lambda: graphc_step(gc.compile(graph), arrays, wrt), ""),
             ("numpy", lambda: lambda: numpy_fn(**arrays), "forward and backward by hand")] + peers
    rows = check_and_time(title, steps, numpy_fn(**arrays), wrt, repeats(50), rtol=1e-4, atol=3e-6,
                          loss_atol=loss_atol)
    print_peers(title, rows)


def main():
    rng = np.random.default_rng(0)
    ce = {"logits": 3 * rng.standard_normal((ROWS, COLS), np.float32), "labels": rng.integers(0, COLS, ROWS)}
    ln = {"x": 2 * rng.standard_normal((ROWS, COLS), np.float32) + 1,
          "dy": rng.standard_normal((ROWS, COLS), np.float32),
          "gamma": rng.uniform(0.5, 1.5, COLS).astype(np.float32), "beta": rng.standard_normal(COLS, np.float32)}
    ce_peers, ln_peers = [], []
    jax = jax_or_none(lazy=True)
    if jax:
        jnp = lazy_module("jax.numpy")

        def jax_ce(logits, labels):
            logp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1))

        ce_peers.append(("jax.jit", lambda: jax_step(jax, jax_ce, ce, CE_WRT), "log_softmax, take_along_axis"))
        ln_peers.append(("jax.jit", lambda: jax_step(jax, lambda x, dy, gamma, beta: jnp.sum(
            jax_layer_norm(jnp, x, gamma, beta) * dy), ln, LN_WRT), "written out"))
    torch = torch_or_none(lazy=True)
    if torch:
        F = lazy_module("torch.nn.functional")
        ce_peers.append(("pytorch", lambda: torch_step(torch, F.cross_entropy, {"input": ce["logits"],
                                                                                "target": ce["labels"]}, ["input"]),
                         "F.cross_entropy, eager"))
        ln_peers.append(("pytorch", lambda: torch_step(torch, lambda x, dy, gamma, beta: (
            F.layer_norm(x, (COLS,), gamma, beta, EPS) * dy).sum(), ln, LN_WRT), "F.layer_norm, eager"))
    bench(f"softmax cross-entropy forward + backward, {ROWS}x{COLS} float32 (grad w.r.t. logits)",
          cross_entropy_graph(), numpy_cross_entropy, ce, CE_WRT, ce_peers, loss_atol=1e-6)
    bench(f"layer norm forward + backward, {ROWS}x{COLS} float32 (grads w.r.t. x, gamma, beta)",
          layer_norm_graph(), numpy_layer_norm, ln, LN_WRT, ln_peers,
          loss_atol=1e-5 * float(np.sum(np.abs(ln["dy"]) * (np.abs(ln["beta"]) + 2))))


if __name__ == "__main__":
    main()
