"""Example graphs used by the demo, the tests and the benchmarks."""

from .ir.build import matmul, sigmoid, sum, tanh
from .ir.composites import gelu, layer_norm, mean, mse
from .ir.graph import Graph


def two_layer(n=64, d_in=1000, hidden=100, d_out=10, dtype="float32") -> Graph:
    """The classic two-layer net: ``h = sigmoid(x @ w1)``, ``loss = sum((h @ w2 - y)**2)``."""
    g = Graph("two_layer")
    x = g.input("x", (n, d_in), dtype)
    y = g.input("y", (n, d_out), dtype)
    w1 = g.param("w1", (d_in, hidden), dtype)
    w2 = g.param("w2", (hidden, d_out), dtype)
    h = sigmoid(matmul(x, w1))
    g.output("loss", sum((matmul(h, w2) - y) ** 2))
    return g


def sgd_step(grad_graph, lr: float):
    """Extend a ``grad`` graph with outputs ``new_<param>`` = param - lr * grad: one SGD step."""
    for name, p in grad_graph.params.items():
        grad_graph.output(f"new_{name}", p - lr * grad_graph.outputs[f"grad_{name}"])
    return grad_graph


def residual_mlp(blocks=32, width=256, batch=4096, dtype="float32") -> Graph:
    """An activation-dominated model, as real rematerialization targets are: ``blocks``
    residual blocks ``h = h + gelu(layer_norm(h) @ w_i)``, loss ``mean(h**2)``."""
    g = Graph("residual_mlp")
    h = g.input("x", (batch, width), dtype)
    for i in range(blocks):
        h = h + gelu(matmul(layer_norm(h), g.param(f"w{i}", (width, width), dtype)))
    g.output("loss", mean(h * h))
    return g


def unrolled_rnn(steps=64, batch=16, d_in=32, hidden=64, dtype="float32") -> Graph:
    """An Elman RNN unrolled in Python, as a user writes one without a loop op:
    ``h = tanh(x[t] @ wx + h @ wh + b)`` for each of ``steps`` steps, loss ``mse(h, y)``. Its
    steps are the same computation on other values, so their kernels are the same source."""
    g = Graph("unrolled_rnn")
    x = g.input("x", (steps, batch, d_in), dtype)
    y = g.input("y", (batch, hidden), dtype)
    wx, wh = g.param("wx", (d_in, hidden), dtype), g.param("wh", (hidden, hidden), dtype)
    b = g.param("b", (hidden,), dtype)
    h = tanh(matmul(x[0], wx) + b)
    for t in range(1, steps):
        h = tanh(matmul(x[t], wx) + matmul(h, wh) + b)
    g.output("loss", mse(h, y))
    return g
