"""The two-layer net's SGD train step (forward + backward + update), float32, N=64,
D_in=1000, H=100, D_out=10: graphc against hand-written numpy, jax.jit and PyTorch eager."""

import numpy as np

import graphc as gc
from common import jax_or_none, median_time, table, torch_or_none
from graphc.examples import sgd_step, two_layer

LR = 1e-4


def main():
    rng = np.random.default_rng(0)
    g = two_layer()
    arrays = {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in g.arguments.items()}
    step = gc.compile(sgd_step(gc.grad(g), LR))
    x, y, w1, w2 = (arrays[k] for k in ("x", "y", "w1", "w2"))

    def numpy_step():
        h = 1 / (1 + np.exp(-(x @ w1)))
        y_pred = h @ w2
        grad_y = 2 * (y_pred - y)
        grad_w2 = h.T @ grad_y
        grad_h = grad_y @ w2.T
        grad_w1 = x.T @ (grad_h * h * (1 - h))
        return np.sum((y_pred - y) ** 2), w1 - LR * grad_w1, w2 - LR * grad_w2

    ours = step(**arrays)
    ref = numpy_step()
    assert np.allclose(ours["new_w1"], ref[1], rtol=1e-4, atol=1e-5), "graphc disagrees with numpy"
    rows = [("graphc", median_time(lambda: step(**arrays), repeat=200), f"{step.stats['n_kernels']} kernels"),
            ("numpy", median_time(numpy_step, repeat=200), "hand-written")]
    jax = jax_or_none()
    if jax:
        import jax.numpy as jnp

        def loss(w1, w2, x, y):
            return jnp.sum((jax.nn.sigmoid(x @ w1) @ w2 - y) ** 2)

        @jax.jit
        def jax_step(w1, w2, x, y):
            value, (g1, g2) = jax.value_and_grad(loss, argnums=(0, 1))(w1, w2, x, y)
            return value, w1 - LR * g1, w2 - LR * g2

        jargs = [jnp.asarray(a) for a in (w1, w2, x, y)]
        rows.append(("jax.jit", median_time(lambda: jax.block_until_ready(jax_step(*jargs)), repeat=200), ""))
    torch = torch_or_none()
    if torch:
        tw1, tw2 = (torch.tensor(a, requires_grad=True) for a in (w1, w2))
        tx, ty = torch.tensor(x), torch.tensor(y)

        def torch_step():
            loss = ((torch.sigmoid(tx @ tw1) @ tw2 - ty) ** 2).sum()
            g1, g2 = torch.autograd.grad(loss, (tw1, tw2))
            with torch.no_grad():
                return loss, tw1 - LR * g1, tw2 - LR * g2

        rows.append(("pytorch eager", median_time(torch_step, repeat=200), ""))
    print(table("two-layer train step (float32, 64x1000 -> 100 -> 10)", rows))
    fastest_peer = min(r[1] for r in rows[1:])
    print(f"   graphc / fastest peer: {rows[0][1] / fastest_peer:.2f}x (target <= 0.9x)")


if __name__ == "__main__":
    main()
