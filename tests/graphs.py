"""Small graphs that several test modules build on."""

import graphc as gc


def relu_classifier():
    """A one-layer relu classifier on 8 x 6 inputs and int64 labels, no outputs yet:
    (graph, logits h, labels, weight w)."""
    g = gc.Graph("mlp")
    x = g.input("x", (8, 6))
    labels = g.input("labels", (8,), "int64")
    w = g.param("w", (6, 4))
    b = g.param("b", (4,))
    return g, gc.relu(gc.linear(x, w, b)), labels, w
