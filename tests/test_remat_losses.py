"""Rematerialization on the losses people train with: cross-entropy against integer labels, mse
against a target input, and models with two input streams and a mask. Each of them reads a data
input by a path that skips the network, so no value lies on every path from every input to the
loss; the spine is taken input by input (``analysis.spine``). Every strategy must lower the
planned peak of these activation-dominated nets, keep outputs bit-identical, and a budget must
never do worse than a named strategy it could have picked.

Planned peaks come from ``gc.compile`` alone (no kernel runs); one graph runs every strategy."""

import numpy as np
import pytest

import compiled  # noqa: F401  (a private kernel cache for the tests)
import graphc as gc
from graphc.passes import analysis
from graphc.passes.analysis import forward_ids
from graphc.profile import example_arguments

BATCH, WIDTH, BLOCKS = 128, 32, 6


def _stream(g, h, prefix, blocks=BLOCKS):
    for i in range(blocks):
        h = h + gc.gelu(gc.layer_norm(h) @ g.param(f"{prefix}{i}", (WIDTH, WIDTH)))
    return h


def cross_entropy_net(blocks=BLOCKS):
    g = gc.Graph("ce")
    h = _stream(g, g.input("x", (BATCH, WIDTH)), "W", blocks)
    g.output("loss", gc.cross_entropy(h @ g.param("W_out", (WIDTH, 10)), g.input("y", (BATCH,), dtype="int32")))
    return g


def mse_net():
    g = gc.Graph("mse")
    h = _stream(g, g.input("x", (BATCH, WIDTH)), "W")
    g.output("loss", gc.mse(h @ g.param("W_out", (WIDTH, 10)), g.input("target", (BATCH, 10))))
    return g


def mean_square_net():
    """The same network with a loss that reads nothing but the network: the spine to match."""
    g = gc.Graph("mean_square")
    h = _stream(g, g.input("x", (BATCH, WIDTH)), "W")
    g.output("loss", gc.mean(h * h))
    return g


def two_stream_net():
    """Two towers on two inputs, joined, then a masked squared error against targets."""
    g = gc.Graph("two_streams")
    a = _stream(g, g.input("a", (BATCH, WIDTH)), "A")
    b = _stream(g, g.input("b", (BATCH, WIDTH)), "B")
    h = _stream(g, a * b, "C")
    err = (h @ g.param("W_out", (WIDTH, 4)) - g.input("target", (BATCH, 4))) * g.input("mask", (BATCH, 4))
    g.output("loss", gc.sum(err * err))
    return g


NETS = {"cross_entropy": cross_entropy_net, "mse": mse_net, "two_streams": two_stream_net}
GRADS = {name: gc.grad(make()) for name, make in NETS.items()}


def _peak(graph, remat) -> tuple[int, int]:
    st = gc.compile(graph, remat=remat).stats
    return st["peak_bytes"], st["recompute_flops"]


@pytest.fixture(scope="module")
def none_peaks():
    return {name: _peak(dg, "none")[0] for name, dg in GRADS.items()}


@pytest.mark.parametrize("name", list(NETS))
def test_the_spine_is_found_whatever_else_the_loss_reads(name):
    g = gc.simplify(GRADS[name])
    spine = analysis.spine(g, forward_ids(g))
    adds = [v.id for v in g.nodes if v.id in spine and v.op == "add"]
    assert len(adds) >= BLOCKS * (3 if name == "two_streams" else 1)  # every residual add, in each stream
    if name != "two_streams":
        alone = gc.simplify(gc.grad(mean_square_net()))
        assert len(spine) >= len(analysis.spine(alone, forward_ids(alone))) - 2  # the loss's own tail differs


@pytest.mark.parametrize("remat", ["sqrt", "mincut", "budget"])
@pytest.mark.parametrize("name", list(NETS))
def test_every_strategy_lowers_the_peak(name, remat, none_peaks):
    none = none_peaks[name]
    plan = gc.Budget(int(none * 0.8)) if remat == "budget" else remat
    peak, flops = _peak(GRADS[name], plan)
    assert peak < none, (name, remat, peak, none)
    assert flops > 0
    if remat == "sqrt":
        assert peak < none * 0.6  # Chen's sqrt on an activation-dominated net


def test_outputs_stay_bit_identical_on_the_cross_entropy_net():
    dg = gc.grad(cross_entropy_net(blocks=3))
    args = example_arguments(dg, seed=3)
    args["y"] = np.arange(BATCH, dtype=np.int32) % 10
    none = gc.compile(dg)
    expected = none(**args)
    for plan in ("sqrt", "mincut", gc.Budget(int(none.stats["peak_bytes"] * 0.7))):
        out = gc.compile(dg, remat=plan)(**args)
        for k in expected:
            np.testing.assert_array_equal(out[k], expected[k], err_msg=f"{plan}: {k}")


def test_the_readme_two_layer_net_is_not_made_worse():
    g = gc.Graph("two_layer")
    x, y = g.input("x", (64, 1000)), g.input("y", (64, 10))
    h = gc.sigmoid(x @ g.param("w1", (1000, 100)))
    g.output("loss", gc.sum((h @ g.param("w2", (100, 10)) - y) ** 2))
    dg = gc.grad(g)
    none = _peak(dg, "none")[0]
    for remat in ("sqrt", "mincut"):
        assert _peak(dg, remat)[0] <= none, remat


# ---------------------------------------------------------------- the budget's Pareto front


@pytest.mark.parametrize("name", ["cross_entropy", "two_streams"])
def test_budget_front_is_monotone_and_dominates_the_named_strategies(name, none_peaks):
    dg, none = GRADS[name], none_peaks[name]
    front = []
    for share in (1.0, 0.8, 0.6, 0.45, 0.3, 0.15):
        try:
            peak, flops = _peak(dg, gc.Budget(int(none * share)))
        except gc.BudgetError:
            continue
        assert peak <= int(none * share)
        front.append((share, peak, flops))
    assert len(front) >= 4
    for (_, p1, f1), (_, p2, f2) in zip(front, front[1:]):  # tighter budgets: never less recompute
        assert f2 >= f1 and p2 <= none
    for remat in ("sqrt", "mincut"):
        peak, flops = _peak(dg, remat)
        got_peak, got_flops = _peak(dg, gc.Budget(peak))
        assert got_peak <= peak and got_flops <= flops, (remat, peak, flops, got_peak, got_flops)


@pytest.mark.parametrize("name", list(NETS))
def test_the_least_reachable_peak_is_true(name, none_peaks):
    dg = GRADS[name]
    with pytest.raises(gc.BudgetError) as info:
        gc.compile(dg, remat=gc.Budget(1000))
    least = info.value.least_peak_bytes
    assert f"{least:,} bytes" in str(info.value)
    assert least <= min(_peak(dg, remat)[0] for remat in ("sqrt", "mincut"))
    assert _peak(dg, gc.Budget(least))[0] == least
    with pytest.raises(gc.BudgetError):
        gc.compile(dg, remat=gc.Budget(least - 1))
