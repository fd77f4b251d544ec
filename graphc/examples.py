"""Example graphs used by the demo, the tests and the benchmarks."""

from .ir.build import matmul, sigmoid, sum
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
