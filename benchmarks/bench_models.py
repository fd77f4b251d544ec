"""Real models' train steps (forward + backward, float32), graphc against PyTorch eager and
jax.jit in one run, each system in a fresh process (see ``common.check_and_time``):

- gpt: one GPT block (B=8, T=128, D=256, 4 heads, V=512): token embedding (``gc.take``) plus
  positions, pre-norm causal self-attention, a GELU MLP, a final layer norm, logits and
  softmax cross-entropy over the next tokens; gradients for every weight;
- embedding: the lookup alone at V=32000 (B=8, T=128, D=256), loss sum(rows * dy): its
  gradient is a scatter-add into the table;
- rnn64 / lstm64: an Elman RNN and an LSTM unrolled over 64 steps (B=16, D=32, H=64), the
  input projections per step as a user writes them, loss mse(h_T, y);
- softmax regression: batch 64, 784 -> 10, cross-entropy.

Every system's loss and gradients are first checked against graphc's reference interpreter
(numpy, op by op) on the same graph, to float32 tolerance.

    python benchmarks/bench_models.py [--models gpt,embedding,rnn64,lstm64,softmax_regression]
"""

import argparse
import math

import numpy as np

import graphc as gc
from common import (check_and_time, graphc_step, jax_or_none, jax_step, print_peers, repeats, torch_or_none,
                    torch_step)

rng = np.random.default_rng(0)


def normal(*shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------- the models, three ways each


class Gpt:
    B, T, D, H, V = 8, 128, 256, 4, 512
    wrt = ["wte", "wpe", "g1", "b1", "wq", "wk", "wv", "wo", "g2", "b2", "w1", "w2", "gf", "bf", "head"]

    def arrays(self):
        B, T, D, V = self.B, self.T, self.D, self.V
        s = 1 / math.sqrt(D)
        return {"tokens": rng.integers(0, V, (B, T)), "targets": rng.integers(0, V, (B, T)),
                "wte": normal(V, D, scale=0.5), "wpe": normal(T, D, scale=0.1),
                "g1": np.ones(D, np.float32), "b1": np.zeros(D, np.float32),
                **{w: normal(D, D, scale=s) for w in ("wq", "wk", "wv", "wo")},
                "g2": np.ones(D, np.float32), "b2": np.zeros(D, np.float32),
                "w1": normal(D, 4 * D, scale=s), "w2": normal(4 * D, D, scale=0.5 * s),
                "gf": np.ones(D, np.float32), "bf": np.zeros(D, np.float32), "head": normal(D, V, scale=s)}

    def block(self, m, a):
        """The model over namespace ``m`` (gc, jnp or torch spelled alike by the callers)."""
        B, T, D, H = self.B, self.T, self.D, self.H
        dh = D // H
        x = m.take(a["wte"], a["tokens"]) + a["wpe"]
        h = m.layer_norm(x, a["g1"], a["b1"])

        def heads(w):
            return m.transpose(m.reshape(h @ w, (B, T, H, dh)), (0, 2, 1, 3))
        q, k, v = heads(a["wq"]), heads(a["wk"]), heads(a["wv"])
        att = m.where(m.causal, (q @ m.transpose(k, (0, 1, 3, 2))) * (1 / math.sqrt(dh)), -1e9)
        y = m.reshape(m.transpose(m.softmax(att) @ v, (0, 2, 1, 3)), (B, T, D))
        x = x + y @ a["wo"]
        x = x + m.gelu(m.layer_norm(x, a["g2"], a["b2"]) @ a["w1"]) @ a["w2"]
        logits = m.layer_norm(x, a["gf"], a["bf"]) @ a["head"]
        return m.cross_entropy(m.reshape(logits, (B * T, self.V)), m.reshape(a["targets"], (B * T,)))


class Embedding:
    B, T, D, V = 8, 128, 256, 32000
    wrt = ["wte"]

    def arrays(self):
        return {"tokens": rng.integers(0, self.V, (self.B, self.T)), "dy": normal(self.B, self.T, self.D),
                "wte": normal(self.V, self.D)}

    def block(self, m, a):
        return m.sum(m.take(a["wte"], a["tokens"]) * a["dy"])


class Rnn:
    T, B, D, H = 64, 16, 32, 64
    wrt = ["wx", "wh", "b"]
    gates = 1

    def arrays(self):
        G = self.gates * self.H
        return {"x": normal(self.T, self.B, self.D), "y": normal(self.B, self.H, scale=0.5),
                "wx": normal(self.D, G, scale=1 / math.sqrt(self.D)),
                "wh": normal(self.H, G, scale=1 / math.sqrt(self.H)), "b": normal(G, scale=0.1)}

    def block(self, m, a):
        x = a["x"]
        h = m.tanh(x[0] @ a["wx"] + a["b"])
        for t in range(1, self.T):
            h = m.tanh(x[t] @ a["wx"] + h @ a["wh"] + a["b"])
        return m.mean((h - a["y"]) ** 2)


class Lstm(Rnn):
    gates = 4

    def block(self, m, a):
        H, x = self.H, a["x"]
        h = c = None
        for t in range(self.T):
            z = x[t] @ a["wx"] + a["b"] + (h @ a["wh"] if h is not None else 0)
            i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
            c = m.sigmoid(i) * m.tanh(g) + (m.sigmoid(f) * c if c is not None else 0)
            h = m.sigmoid(o) * m.tanh(c)
        return m.mean((h - a["y"]) ** 2)


class SoftmaxRegression:
    N, D, C = 64, 784, 10
    wrt = ["w", "b"]

    def arrays(self):
        return {"x": normal(self.N, self.D), "labels": rng.integers(0, self.C, self.N),
                "w": normal(self.D, self.C, scale=0.01), "b": np.zeros(self.C, np.float32)}

    def block(self, m, a):
        return m.cross_entropy(a["x"] @ a["w"] + a["b"], a["labels"])


class Cnn:
    """The issue's CIFAR-sized step: conv3x3 32 -> relu -> pool -> conv3x3 64 -> relu -> pool -> linear 10."""
    N, C, S = 64, 3, 32
    wrt = ["w1", "b1", "w2", "b2", "w3", "b3"]
    # max-pooling sends each window's gradient to its largest element: among 500k windows a few
    # hold two values within float32 rounding, which each system's own summation order decides,
    # and one element's gradient moves (0.1% of w2's elements by 4e-5, against its max 0.06)
    atol = 1e-3

    def arrays(self):
        N, C, S = self.N, self.C, self.S
        return {"x": normal(N, C, S, S), "labels": rng.integers(0, 10, N),
                "w1": normal(32, C, 3, 3, scale=1 / math.sqrt(9 * C)), "b1": np.zeros(32, np.float32),
                "w2": normal(64, 32, 3, 3, scale=1 / math.sqrt(9 * 32)), "b2": np.zeros(64, np.float32),
                "w3": normal(64 * (S // 4) ** 2, 10, scale=0.01), "b3": np.zeros(10, np.float32)}

    def block(self, m, a):
        h = m.max_pool2d(m.relu(m.conv2d(a["x"], a["w1"], padding=1) + m.reshape(a["b1"], (32, 1, 1))), 2)
        h = m.max_pool2d(m.relu(m.conv2d(h, a["w2"], padding=1) + m.reshape(a["b2"], (64, 1, 1))), 2)
        return m.cross_entropy(m.flatten(h) @ a["w3"] + a["b3"], a["labels"])


MODELS = {"gpt": Gpt, "cnn": Cnn, "embedding": Embedding, "rnn64": Rnn, "lstm64": Lstm, "softmax_regression": SoftmaxRegression}


# ---------------------------------------------------------------- the three spellings


class _Graphc:
    def __init__(self, model):
        self.take, self.transpose, self.reshape, self.where = gc.take, gc.transpose, gc.reshape, gc.where
        self.layer_norm, self.softmax, self.gelu = gc.layer_norm, gc.softmax, gc.gelu
        self.cross_entropy = gc.cross_entropy
        self.conv2d, self.max_pool2d, self.relu, self.flatten = gc.conv2d, gc.max_pool2d, gc.relu, gc.flatten
        self.sum, self.mean, self.tanh, self.sigmoid = gc.sum, gc.mean, gc.tanh, gc.sigmoid
        self.model = model

    def graph(self, arrays):
        g = gc.Graph(type(self.model).__name__.lower())
        a = {k: (g.param if k in self.model.wrt else g.input)(k, v.shape, v.dtype.name) for k, v in arrays.items()}
        if hasattr(self.model, "T"):
            T = self.model.T
            self.causal = g.const(np.tril(np.ones((T, T), bool)))
        g.output("loss", self.model.block(self, a))
        return gc.grad(g, wrt=self.model.wrt)


class _Jax:
    def __init__(self, model, jax):
        import jax.numpy as jnp
        self.jnp, self.model = jnp, model
        self.take = lambda t, i: jnp.take(t, i, axis=0)
        self.transpose, self.reshape, self.where = jnp.transpose, jnp.reshape, jnp.where
        self.softmax, self.gelu = jax.nn.softmax, lambda x: jax.nn.gelu(x, approximate=True)
        self.sum, self.mean, self.tanh, self.sigmoid = jnp.sum, jnp.mean, jnp.tanh, jax.nn.sigmoid
        if hasattr(model, "T"):
            self.causal = jnp.tril(jnp.ones((model.T, model.T), bool))

    def conv2d(self, x, w, padding=0):
        import jax
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(padding, padding)] * 2,
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def max_pool2d(self, x, k):
        import jax
        return jax.lax.reduce_window(x, -self.jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, k, k), "VALID")

    def relu(self, x):
        return self.jnp.maximum(x, 0)

    def flatten(self, x):
        return self.jnp.reshape(x, (x.shape[0], -1))

    def layer_norm(self, x, g, b):
        jnp = self.jnp
        xc = x - jnp.mean(x, -1, keepdims=True)
        return xc / jnp.sqrt(jnp.mean(xc * xc, -1, keepdims=True) + 1e-5) * g + b

    def cross_entropy(self, logits, labels):
        import jax
        logp = jax.nn.log_softmax(logits)
        return -self.jnp.mean(self.jnp.take_along_axis(logp, labels[:, None].astype(self.jnp.int32), axis=1))

    def loss(self, **a):
        return self.model.block(self, a)


class _Torch:
    def __init__(self, model, torch):
        import torch.nn.functional as F
        self.torch, self.F, self.model = torch, F, model
        self.take = lambda t, i: F.embedding(i, t)
        self.transpose = lambda x, p: x.permute(*p)
        self.reshape, self.where = torch.reshape, torch.where
        self.softmax, self.gelu = (lambda x: torch.softmax(x, -1)), (lambda x: F.gelu(x, approximate="tanh"))
        self.sum, self.mean, self.tanh, self.sigmoid = torch.sum, torch.mean, torch.tanh, torch.sigmoid
        self.cross_entropy = F.cross_entropy
        self.conv2d, self.max_pool2d, self.relu = F.conv2d, F.max_pool2d, torch.relu
        self.flatten = lambda x: torch.flatten(x, 1)
        if hasattr(model, "T"):
            self.causal = torch.tril(torch.ones((model.T, model.T), dtype=torch.bool))

    def layer_norm(self, x, g, b):
        return self.F.layer_norm(x, (x.shape[-1],), g, b, 1e-5)

    def loss(self, **a):
        return self.model.block(self, a)


def bench(name, model):
    arrays = model.arrays()
    grad = _Graphc(model).graph(arrays)
    out = gc.evaluate(grad, **arrays)
    reference = (out["loss"], [out[f"grad_{w}"] for w in model.wrt])
    steps = [("graphc", lambda: graphc_step(gc.compile(grad), arrays, model.wrt), "")]
    jax = jax_or_none(lazy=True)
    if jax:
        steps.append(("jax.jit", lambda: jax_step(jax, _Jax(model, jax.load()).loss, arrays, model.wrt), ""))
    torch = torch_or_none(lazy=True)
    if torch:
        steps.append(("pytorch", lambda: torch_step(torch, _Torch(model, torch.load()).loss, arrays, model.wrt),
                      "eager"))
    title = f"{name}: forward + backward, float32"
    rows = check_and_time(title, steps, reference, model.wrt, repeats(30), rtol=2e-3,
                          atol=getattr(model, "atol", 2e-4),  # of the largest gradient element
                          loss_atol=1e-4 * max(1.0, abs(float(reference[0]))))
    print_peers(title, rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    for name in parser.parse_args().models.split(","):
        bench(name, MODELS[name]())


if __name__ == "__main__":
    main()
