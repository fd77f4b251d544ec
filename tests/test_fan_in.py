"""Fan-out adds that cost what they should: the slice gradients of ``x[0] ... x[T-1]`` join into
one concat instead of T full-size zero pads, and a weight's T matmul gradients into one matmul
of concatenated operands (``passes/autodiff/accumulate.py``). Values against finite differences
and the reference interpreter; memory against the size of the model."""

from collections import Counter

import numpy as np
import pytest

import graphc as gc
from gradcheck import check_all
from graphc.profile import example_arguments


def ops(graph) -> Counter:
    return Counter(v.op for v in graph.nodes)


def _rnn_loss(g, x, y, wx, wh, b):
    """An RNN whose input projection is one matmul over all steps, then sliced per step."""
    (T, B, D), H = x.shape, wh.shape[0]
    xw = gc.reshape(gc.reshape(x, (T * B, D)) @ wx, (T, B, H))
    h = gc.tanh(xw[0] + b)
    for t in range(1, T):
        h = gc.tanh(xw[t] + h @ wh + b)
    return gc.mean((h - y) ** 2)


def _rnn(T, B=4, D=3, H=8):
    g = gc.Graph("rnn")
    x, y = g.input("x", (T, B, D), "float64"), g.input("y", (B, H), "float64")
    wx, wh, b = g.param("wx", (D, H), "float64"), g.param("wh", (H, H), "float64"), g.param("b", (H,), "float64")
    g.output("loss", _rnn_loss(g, x, y, wx, wh, b))
    return g


def test_slices_of_every_step_join_into_one_concat_and_no_pad():
    grad = gc.grad(_rnn(12))
    assert ops(grad)["pad"] == 0
    assert ops(grad)["concat"] == 3  # the sliced projection's gradient, both operands of wh's matmul
    assert ops(grad)["matmul"] == 1 + 11 + 11 + 1 + 1  # forward, h @ wh backward, one per weight


def test_rnn_gradient_through_joined_slices_and_matmuls_matches_finite_differences():
    rng = np.random.default_rng(3)
    T, B, D, H = 5, 3, 2, 4
    args = {"x": rng.normal(size=(T, B, D)), "y": rng.normal(size=(B, H)), "wx": rng.normal(size=(D, H)),
            "wh": rng.normal(size=(H, H)) * 0.5, "b": rng.normal(size=H)}
    check_all(_rnn_loss, args, wrt=["x", "wx", "wh", "b"])


def test_planned_peak_grows_linearly_with_the_number_of_steps():
    """T zero pads of a (T, B, H) projection summed by one fused add held O(T^2) bytes."""
    peaks = {T: gc.compile(gc.grad(_rnn(T, B=16, D=8, H=64))).stats["peak_bytes"] for T in (16, 32, 64)}
    assert peaks[64] / peaks[32] < 2.2 and peaks[32] / peaks[16] < 2.2, peaks


@pytest.mark.parametrize("case", ["gaps", "windows", "strided", "reversed", "repeated", "axis1", "mixed"])
def test_slice_gradients_match_finite_differences(case):
    def build(g, x):
        parts = {
            "gaps": [x[0:2], x[3:4], x[6:8]],  # zeros between and after the pieces
            "windows": [x[t:t + 3] for t in range(6)],  # overlapping: several chains
            "strided": [x[0::2], x[1::2], x[1:5:3]],  # interior pads are summed as they are
            "reversed": [x[::-1][0:3], x[2::-1], x[5:8]],
            "repeated": [x[1:3], x[1:3], x[4:6]],
            "axis1": [x[:, 0:1], x[:, 1:3], x[:, 4:5]],
            "mixed": [x[0:4], x[4:8], x],
        }[case]
        return {f"o{k}": gc.tanh(p) * (k + 1) for k, p in enumerate(parts)}
    check_all(build, {"x": np.random.default_rng(7).normal(size=(8, 5))})


def test_a_weight_used_with_different_contraction_sizes_joins_into_one_matmul():
    def build(g, w, a1, a2, a3):
        return gc.sum(gc.tanh(a1 @ w) + gc.tanh(a2 @ w) * gc.tanh(a3 @ w))
    rng = np.random.default_rng(1)
    args = {"w": rng.normal(size=(4, 3)), "a1": rng.normal(size=(5, 4)),
            "a2": rng.normal(size=(5, 4)), "a3": rng.normal(size=(5, 4))}
    check_all(build, args)
    g = gc.Graph("shared")
    w = g.param("w", (6, 6), "float64")
    h = g.input("h", (2, 6), "float64")
    for _ in range(4):
        h = gc.tanh(h @ w)
    g.output("loss", gc.sum(h))
    grad = gc.grad(g)
    assert ops(grad)["concat"] == 2
    fn = gc.compile(grad)
    args = example_arguments(grad, seed=2)
    for name, value in gc.evaluate(grad, **args).items():
        np.testing.assert_allclose(fn(**args)[name], value, rtol=1e-12, atol=1e-12)


def test_small_results_of_long_contractions_stay_separate_matmuls():
    """Joining (2, 500) @ (500, 2) terms would copy 2000 elements a term to save 4."""
    g = gc.Graph("long")
    w = g.param("w", (500, 2), "float64")
    a = g.input("a", (2, 500), "float64")
    g.output("loss", gc.sum(gc.tanh(a @ w) * gc.sin(gc.cos(a) @ w)))
    grad = gc.grad(g, wrt="w")
    assert ops(grad)["concat"] == 0
    rng = np.random.default_rng(4)
    check_all(lambda g, w, a: gc.sum(gc.tanh(a @ w) * gc.sin(gc.cos(a) @ w)),
              {"w": rng.normal(size=(500, 2)) * 0.05, "a": rng.normal(size=(2, 500))})


def test_unsimplified_gradient_has_no_dead_pads():
    grad = gc.grad(_rnn(4), simplify=False)
    assert ops(grad)["pad"] == 0
    read = {u.id for w in grad.nodes for u in w.inputs} | {v.id for v in grad.outputs.values()}
    assert [v for v in grad.nodes if v.id not in read and v.op not in ("input", "param")] == []


def test_a_batch_of_rows_times_a_matrix_is_one_2d_matmul_and_so_is_its_weight_gradient():
    """(B, T, D) @ (D, E) broadcast the weight to (B, D, E), and its gradient was B matmuls summed."""
    def build(g, x, w):
        return gc.tanh(x @ w)
    rng = np.random.default_rng(5)
    p = check_all(build, {"x": rng.normal(size=(2, 3, 4)), "w": rng.normal(size=(4, 5))})
    grad = gc.grad(p.forward(with_loss=True), of="loss", wrt=p.wrt)
    assert {v.shape for v in grad.nodes if v.op == "matmul"} == {(6, 5), (6, 4), (4, 5)}
    assert not [v for v in grad.nodes if v.op == "broadcast_to" and v.shape == (2, 4, 5)]
