"""Example graphs used by the demo, the tests and the benchmarks."""

import math

import numpy as np

from .ir.build import matmul, relu, reshape, sigmoid, sum, tanh
from .ir.composites import batch_norm, cross_entropy, gelu, layer_norm, mean, mse
from .ir.convolution import avg_pool2d, conv2d, flatten, max_pool2d
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


def lecture_cnn(batch=64, channels=1, size=8, classes=10, widths=(16, 32), dtype="float32") -> Graph:
    """The classic course's small convnet: (conv 3x3 -> relu -> 2x2 max-pool) twice, then a
    linear layer and softmax cross-entropy. Inputs ``x`` (batch, channels, size, size) and
    ``labels``; outputs ``loss`` and ``logits``; params ``w1 b1 w2 b2 w3 b3``."""
    g = Graph("lecture_cnn")
    h = g.input("x", (batch, channels, size, size), dtype)
    labels = g.input("labels", (batch,), "int64")
    for k, (c_in, c_out) in enumerate(zip((channels,) + tuple(widths), widths), 1):
        w, b = g.param(f"w{k}", (c_out, c_in, 3, 3), dtype), g.param(f"b{k}", (c_out, 1, 1), dtype)
        h = max_pool2d(relu(conv2d(h, w, padding=1) + b), 2)
    k = len(widths) + 1
    logits = matmul(flatten(h), g.param(f"w{k}", (math.prod(h.shape[1:]), classes), dtype))
    logits = logits + g.param(f"b{k}", (classes,), dtype)
    g.output("loss", cross_entropy(logits, labels))
    g.output("logits", logits)
    return g


def resnet_basic(batch=32, channels=3, size=16, classes=10, width=16, blocks=2, dtype="float32") -> Graph:
    """A ResNet-style net of basic blocks: a 3x3 stem, then ``blocks`` times
    ``relu(x + bn(conv(relu(bn(conv(x))))))`` (batch norm in training mode), global average
    pooling, a linear layer and cross-entropy. Outputs ``loss`` and ``logits``."""
    g = Graph("resnet_basic")
    x = g.input("x", (batch, channels, size, size), dtype)
    labels = g.input("labels", (batch,), "int64")

    def conv_bn(h, name, c_in):
        w = g.param(f"{name}_w", (width, c_in, 3, 3), dtype)
        gamma, beta = g.param(f"{name}_gamma", (width,), dtype), g.param(f"{name}_beta", (width,), dtype)
        return batch_norm(conv2d(h, w, padding=1), gamma, beta).out

    h = relu(conv_bn(x, "stem", channels))
    for k in range(blocks):
        h = relu(h + conv_bn(relu(conv_bn(h, f"block{k}_a", width)), f"block{k}_b", width))
    pooled = reshape(avg_pool2d(h, size), (batch, width))
    logits = matmul(pooled, g.param("fc_w", (width, classes), dtype)) + g.param("fc_b", (classes,), dtype)
    g.output("loss", cross_entropy(logits, labels))
    g.output("logits", logits)
    return g


def init_params(graph: Graph, seed=0) -> dict:
    """He-normal weights (a 4-D convolution weight's fan-in is C*kh*kw, a matrix's its rows),
    zero biases and betas, unit gammas: arrays for every param of ``graph``."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, p in graph.params.items():
        if name.endswith("_gamma"):
            arrays[name] = np.ones(p.shape, p.dtype)
        elif len(p.shape) in (2, 4):
            fan_in = math.prod(p.shape[1:]) if len(p.shape) == 4 else p.shape[0]
            arrays[name] = (rng.standard_normal(p.shape) * math.sqrt(2 / fan_in)).astype(p.dtype)
        else:
            arrays[name] = np.zeros(p.shape, p.dtype)
    return arrays
