"""Planned peaks of every remat plan on the losses people train with: the 12-block residual net
of the issue "Remat breaks on real training losses" (256 x 128, layer norm, GELU) with a loss
that reads only the network (mean(h*h)), mse against a target input, and cross-entropy against
int32 labels; and the 16- and 32-block ``residual_mlp`` budgets. Plans only (no kernel runs):
planned peak, recomputed flops as a share of the forward, and the seconds each compile took.

    python benchmarks/bench_remat_losses.py
"""

import time

import graphc as gc
from graphc.examples import residual_mlp


def residual_net(loss: str):
    g = gc.Graph("residual")
    h = g.input("x", (256, 128))
    for i in range(12):
        h = h + gc.gelu(gc.layer_norm(h) @ g.param(f"W{i}", (128, 128)))
    logits = h @ g.param("W_out", (128, 10))
    if loss == "cross_entropy":
        g.output("loss", gc.cross_entropy(logits, g.input("y", (256,), dtype="int32")))
    elif loss == "mse":
        g.output("loss", gc.mse(logits, g.input("target", (256, 10))))
    else:
        g.output("loss", gc.mean(h * h))
    return gc.grad(g)


def plan(graph, remat) -> str:
    t = time.perf_counter()
    try:
        st = gc.compile(graph, remat=remat).stats
    except gc.BudgetError as e:
        return f"{'infeasible':>12} (least {e.least_peak_bytes / 1e6:.2f} MB){'':>4}{time.perf_counter() - t:>6.1f}s"
    share = 100 * st["recompute_flops"] / max(st["forward_flops"], 1)
    return f"{st['peak_bytes'] / 1e6:>9.2f} MB {share:>6.1f}%{'':>14}{time.perf_counter() - t:>6.1f}s"


def main():
    print("== planned peak, recompute (% of the forward), compile seconds")
    cases = [(f"12 blocks, {loss}", residual_net(loss)) for loss in ("mean(h*h)", "mse", "cross_entropy")]
    cases += [(f"residual_mlp({n}, {w}, {b})", gc.grad(residual_mlp(n, w, b))) for n, w, b in
              ((16, 128, 1024), (32, 256, 4096))]
    for name, graph in cases:
        none = gc.compile(graph).stats["peak_bytes"]
        print(f"-- {name}")
        for remat in ("none", "sqrt", "mincut", 0.9, 0.6, 0.4, 0.2):
            label = remat if isinstance(remat, str) else f"Budget({remat:.0%})"
            print(f"   {label:<13}{plan(graph, remat if isinstance(remat, str) else gc.Budget(int(none * remat)))}")


if __name__ == "__main__":
    main()
