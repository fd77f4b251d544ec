"""MLP 784-1024-1024-10, batch 256, relu, softmax cross-entropy with integer labels: one SGD
train step in float32, graphc against hand-written numpy, jax.jit and PyTorch eager."""

import numpy as np

import graphc as gc
from common import jax_or_none, median_time, table, torch_or_none

SIZES = (784, 1024, 1024, 10)
BATCH = 256
LR = 1e-2


def mlp_graph():
    g = gc.Graph("mlp")
    h = g.input("x", (BATCH, SIZES[0]))
    labels = g.input("labels", (BATCH,), "int64")
    for k, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        h = gc.linear(h, g.param(f"w{k}", (a, b)), g.param(f"b{k}", (b,)))
        if k < len(SIZES) - 2:
            h = gc.relu(h)
    g.output("loss", gc.cross_entropy(h, labels))
    return g


def main():
    rng = np.random.default_rng(0)
    g = mlp_graph()
    arrays = {"x": rng.standard_normal((BATCH, SIZES[0])).astype(np.float32),
              "labels": rng.integers(0, SIZES[-1], BATCH)}
    for k, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        arrays[f"w{k}"] = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        arrays[f"b{k}"] = np.zeros(b, np.float32)
    dg = gc.grad(g)
    for name, p in dg.params.items():
        dg.output(f"new_{name}", p - LR * dg.outputs[f"grad_{name}"])
    step = gc.compile(dg)
    ws = [arrays[f"w{k}"] for k in range(3)]
    bs = [arrays[f"b{k}"] for k in range(3)]
    x, labels = arrays["x"], arrays["labels"]

    def numpy_step():
        acts, h = [x], x
        for k in range(3):
            h = h @ ws[k] + bs[k]
            if k < 2:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(BATCH), labels]))
        grad = p
        grad[np.arange(BATCH), labels] -= 1
        grad /= BATCH
        new = []
        for k in (2, 1, 0):
            new.append((ws[k] - LR * (acts[k].T @ grad), bs[k] - LR * grad.sum(axis=0)))
            if k:
                grad = (grad @ ws[k].T) * (acts[k] > 0)
        return loss, new

    ours = step(**arrays)
    ref = numpy_step()
    assert np.allclose(ours["loss"], ref[0], rtol=1e-4), "graphc disagrees with numpy"
    rows = [("graphc", median_time(lambda: step(**arrays), repeat=30), f"{step.stats['n_kernels']} kernels"),
            ("numpy", median_time(numpy_step, repeat=30), "hand-written")]
    jax = jax_or_none()
    if jax:
        import jax.numpy as jnp

        def loss_fn(params, x, labels):
            h = x
            for k, (w, b) in enumerate(params):
                h = h @ w + b
                if k < 2:
                    h = jax.nn.relu(h)
            logp = jax.nn.log_softmax(h)
            return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

        @jax.jit
        def jax_step(params, x, labels):
            value, grads = jax.value_and_grad(loss_fn)(params, x, labels)
            return value, [(w - LR * gw, b - LR * gb) for (w, b), (gw, gb) in zip(params, grads)]

        params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in zip(ws, bs)]
        jx, jl = jnp.asarray(x), jnp.asarray(labels)
        rows.append(("jax.jit", median_time(lambda: jax.block_until_ready(jax_step(params, jx, jl)), repeat=30), ""))
    torch = torch_or_none()
    if torch:
        tparams = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for w, b in zip(ws, bs)]
        tx, tl = torch.tensor(x), torch.tensor(labels)

        def torch_step():
            h = tx
            for k, (w, b) in enumerate(tparams):
                h = h @ w + b
                if k < 2:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(h, tl)
            grads = torch.autograd.grad(loss, [t for pair in tparams for t in pair])
            with torch.no_grad():
                return [t - LR * gt for t, gt in zip([t for pair in tparams for t in pair], grads)]

        rows.append(("pytorch eager", median_time(torch_step, repeat=30), ""))
    print(table("MLP 784-1024-1024-10 train step (float32, batch 256)", rows))
    gflops = 3 * 2 * BATCH * sum(a * b for a, b in zip(SIZES, SIZES[1:])) / rows[0][1] / 1e9
    print(f"   graphc: {gflops:.0f} GFLOP/s in matmuls; graphc / jax: "
          + (f"{rows[0][1] / dict((r[0], r[1]) for r in rows)['jax.jit']:.2f}x (target <= 1.0x)"
             if jax else "jax not installed"))


if __name__ == "__main__":
    main()
