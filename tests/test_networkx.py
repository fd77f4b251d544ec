"""Graph.to_networkx(): one node per value with op/shape/dtype (and name), edges operand -> user."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import examples
from graphs import relu_classifier


def _mlp():
    g, h, labels, _ = relu_classifier()
    g.output("loss", gc.cross_entropy(h, labels))
    g.output("probs", gc.softmax(h))
    return g


def _square():
    g = gc.Graph("sq")
    x = g.input("x", (3,))
    g.output("sq", x * x)  # the same operand twice
    g.output("x", x)  # an output that is an input
    return g


GRAPHS = {
    "two_layer": lambda: examples.two_layer(n=4, d_in=5, hidden=3, d_out=2),
    "mlp": _mlp,
    "square": _square,
    "empty": lambda: gc.Graph("empty"),
}


def expected_edges(g):
    return {(i.id, v.id) for v in g.nodes for i in v.inputs}


@pytest.mark.parametrize("build", GRAPHS.values(), ids=GRAPHS.keys())
def test_nodes_attributes_and_edges(build):
    g = build()
    G = g.to_networkx()
    assert isinstance(G, nx.DiGraph)
    assert sorted(G.nodes) == list(range(len(g.nodes)))
    for v in g.nodes:
        data = G.nodes[v.id]
        assert data["op"] == v.op
        assert tuple(data["shape"]) == v.shape
        assert data["dtype"] == v.dtype
        if v.op in ("input", "param"):
            assert data["name"] == v.attrs["name"]
        else:
            assert data.get("name") is None
    assert set(G.edges) == expected_edges(g)
    for v in g.nodes:  # in-degree = number of distinct operands
        assert G.in_degree(v.id) == len({i.id for i in v.inputs})
    assert nx.is_directed_acyclic_graph(G)


@pytest.mark.parametrize("build", GRAPHS.values(), ids=GRAPHS.keys())
def test_graph_attributes_record_name_and_outputs(build):
    g = build()
    G = g.to_networkx()
    assert G.graph["name"] == g.name
    assert G.graph["outputs"] == {n: v.id for n, v in g.outputs.items()}
    assert list(G.graph["outputs"]) == list(g.outputs)  # order of outputs kept


def test_two_layer_structure():
    g = examples.two_layer(n=4, d_in=5, hidden=3, d_out=2)
    G = g.to_networkx()
    ops = nx.get_node_attributes(G, "op")
    names = {n: d["name"] for n, d in G.nodes(data=True) if d.get("name")}
    assert names == {0: "x", 1: "y", 2: "w1", 3: "w2"}
    assert sorted(n for n, op in ops.items() if op == "matmul") == [4, 6]
    assert set(G.predecessors(4)) == {0, 2}
    assert set(G.successors(4)) == {5}
    assert list(G.successors(G.graph["outputs"]["loss"])) == []
    # every value reaches the loss
    assert nx.ancestors(G, G.graph["outputs"]["loss"]) == set(range(11))


def test_square_keeps_one_edge_for_a_repeated_operand():
    g = _square()
    G = g.to_networkx()
    mul = next(v for v in g.nodes if v.op == "mul")
    assert [i.id for i in mul.inputs] == [0, 0]
    assert list(G.in_edges(mul.id)) == [(0, mul.id)]
    assert G.graph["outputs"]["x"] == 0


def _random_graph(draw_ops, seed):
    """A graph built from a random sequence of builder ops over a growing pool of values."""
    rng = np.random.default_rng(seed)
    g = gc.Graph("random")
    pool = [g.input("a", (2, 3)), g.param("b", (2, 3)), g.input("c", (3,))]
    for op in draw_ops:
        x = pool[rng.integers(len(pool))]
        y = pool[rng.integers(len(pool))]
        if op == "add":
            v = x + y if x.shape == y.shape or x.ndim != y.ndim else x + 1.0
        elif op == "mul":
            v = x * y if x.shape == y.shape or x.ndim != y.ndim else x * 2.0
        elif op == "tanh":
            v = gc.tanh(x)
        elif op == "sum":
            v = gc.sum(x, axis=-1, keepdims=True) if x.ndim else x
        else:
            v = gc.exp(-x)
        pool.append(v)
    g.output("out", pool[-1])
    g.output("first", pool[0])
    return g


@settings(max_examples=30)
@given(st.lists(st.sampled_from(["add", "mul", "tanh", "sum", "exp"]), min_size=1, max_size=12),
       st.integers(0, 2**32 - 1))
def test_topological_sort_respects_operands(ops, seed):
    g = _random_graph(ops, seed)
    gc.verify(g)
    G = g.to_networkx()
    assert G.number_of_nodes() == len(g.nodes)
    assert set(G.edges) == expected_edges(g)
    assert nx.is_directed_acyclic_graph(G)
    order = list(nx.topological_sort(G))
    assert sorted(order) == list(range(len(g.nodes)))
    position = {n: k for k, n in enumerate(order)}
    for v in g.nodes:
        for i in v.inputs:
            assert position[i.id] < position[v.id]
    # graph order is itself a topological order: every edge points forward
    assert all(u < w for u, w in G.edges)


def test_networkx_graph_is_a_snapshot():
    g = examples.two_layer(n=4, d_in=5, hidden=3, d_out=2)
    G = g.to_networkx()
    g.output("extra", gc.exp(g.inputs["x"]))
    assert G.number_of_nodes() == 12 and "extra" not in G.graph["outputs"]
    G2 = g.to_networkx()
    assert G2.number_of_nodes() == 13 and G2.graph["outputs"]["extra"] == 12
    assert set(G2.predecessors(12)) == {0}
