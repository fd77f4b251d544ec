"""``remat=gc.Budget(bytes=N)``: budgets respected, looser budgets never recompute more,
impossible budgets name the least peak, the DP and the MILP agree, the greedy heuristic is
never better than the exact optimum, and outputs stay bit-identical."""

import numpy as np
import pytest

import compiled  # noqa: F401  (a private kernel cache for the tests)
import graphc as gc
from graphc.examples import residual_mlp
from graphc.passes import budget, pipeline
from graphc.passes.memory import saved_values
from graphc.passes.remat import activation_ids, forward_ids, rematerialize
from graphc.profile import example_arguments


def chain(layers=6, width=16, batch=64, dtype="float64"):
    """A plain chain: tanh layers with matmuls, loss sum(h^2)."""
    g = gc.Graph("chain")
    h = g.input("x", (batch, width), dtype)
    for i in range(layers):
        h = gc.tanh(h @ g.param(f"w{i}", (width, width), dtype))
    g.output("loss", gc.sum(h * h))
    return gc.grad(g)


GRAPHS = {"chain": chain(), "residual": gc.grad(residual_mlp(6, 16, 64))}


@pytest.fixture(scope="module", params=list(GRAPHS))
def case(request):
    dg = GRAPHS[request.param]
    none = gc.compile(dg)
    args = example_arguments(dg, seed=1)
    return dg, none, args, none(**args)


def _model(dg):
    g = gc.simplify(dg)
    _, steps, memory = pipeline.plan_steps(rematerialize(g, "none"), True)
    saved = {i: g.nodes[i].type.nbytes for i in saved_values(g, steps, memory)}
    return g, budget.build_model(g, forward_ids(g), saved, memory.peak_bytes)


def test_budgets_are_respected_and_looser_ones_never_recompute_more(case):
    dg, none, args, expected = case
    peak = none.stats["peak_bytes"]
    previous = None
    for share in (0.95, 0.8, 0.65, 0.5):
        try:
            fn = gc.compile(dg, remat=gc.Budget(int(peak * share)))
        except gc.CompileError as e:
            assert "least planned peak" in str(e)
            break
        assert fn.stats["peak_bytes"] <= int(peak * share)
        out = fn(**args)
        for name in expected:
            np.testing.assert_array_equal(out[name], expected[name], err_msg=name)
        if previous is not None:
            assert fn.stats["recompute_flops"] >= previous  # a tighter budget never recomputes less
        previous = fn.stats["recompute_flops"]
    assert previous is not None and previous > 0


def test_a_budget_the_plain_plan_fits_recomputes_nothing(case):
    dg, none, _, _ = case
    fn = gc.compile(dg, remat=gc.Budget(none.stats["peak_bytes"]))
    assert fn.stats["recompute_flops"] == 0
    assert fn.stats["peak_bytes"] == none.stats["peak_bytes"]


def test_an_impossible_budget_states_the_least_peak(case):
    dg, none, _, _ = case
    with pytest.raises(gc.CompileError, match=r"least planned peak this graph reaches: ([\d,]+) bytes") as info:
        gc.compile(dg, remat=gc.Budget(1000))
    least = int(info.value.args[0].split("reaches: ")[1].split(" bytes")[0].replace(",", ""))
    assert 1000 < least < none.stats["peak_bytes"]
    fn = gc.compile(dg, remat=gc.Budget(least))  # the least peak is reachable, as stated
    assert fn.stats["peak_bytes"] <= least


@pytest.mark.parametrize("name", ["residual", "short chain"])
def test_dp_and_milp_agree_and_greedy_is_never_better(name):
    pytest.importorskip("scipy", reason="the MILP needs scipy (in the test extra)")
    _, model = _model(GRAPHS["residual"] if name == "residual" else chain(layers=3))
    top = model.peak([(0, len(model.a), True)])
    worse = 0
    for k in range(24):
        limit = model.base + (top - model.base) * k // 24
        dp, milp, greedy = (budget.solve_dp(model, limit), budget.solve_milp(model, limit),
                            budget.solve_greedy(model, limit))
        assert (dp is None) == (milp is None), limit
        if dp is None:
            assert greedy is None or model.peak(greedy[1]) <= limit
            continue
        assert dp[0] == milp[0], (limit, dp, milp)
        for cost, plan in (dp, milp):
            assert model.peak(plan) <= limit and model.cost(plan) == cost
        if greedy is not None:
            assert greedy[0] >= dp[0] and model.peak(greedy[1]) <= limit
            worse += greedy[0] > dp[0]
    assert worse >= 0  # counted for the report below; the heuristic may be optimal everywhere


def test_dp_matches_brute_force_on_a_small_model():
    """Every plan of a 5-block model, enumerated: the DP finds the cheapest that fits."""
    model = budget.Model(a=[40, 30, 50, 20, 10], s=[8, 4, 8, 2, 1], f=[5, 3, 7, 2, 1], base=10)
    n = len(model.a)
    plans = []
    for cuts in range(1 << (n - 1)):
        bounds = [0] + [i + 1 for i in range(n - 1) if cuts >> i & 1] + [n]
        segs = list(zip(bounds, bounds[1:]))
        for kinds in range(1 << len(segs)):
            plans.append(tuple((lo, hi, not kinds >> k & 1) for k, (lo, hi) in enumerate(segs)))
    for limit in range(10, 170, 3):
        fits = [model.cost(p) for p in plans if model.peak(p) <= limit]
        found = budget.solve_dp(model, limit)
        assert (found is None) == (not fits), limit
        if fits:
            assert found[0] == min(fits), limit


def test_greedy_reports_when_it_is_worse_than_the_optimum():
    dg = GRAPHS["residual"]
    none = gc.compile(dg)
    g, model = _model(dg)
    for share in (0.8, 0.6, 0.5):
        limit = int(none.stats["peak_bytes"] * share)
        dp, greedy = budget.solve_dp(model, limit), budget.solve_greedy(model, limit)
        if dp and greedy and greedy[0] > dp[0]:
            fn = gc.compile(dg, remat=gc.Budget(limit, method="greedy"))
            assert "more than the exact optimum" in fn.stats["remat_note"]
            return
    pytest.fail("no budget where the greedy heuristic is worse: pick other shares")


def test_method_choice_and_bad_budgets():
    dg = GRAPHS["residual"]
    peak = gc.compile(dg).stats["peak_bytes"]
    for method in ("dp", "greedy"):
        fn = gc.compile(dg, remat=gc.Budget(int(peak * 0.8), method=method))
        assert f"({method}," in fn.stats["remat_note"] and fn.stats["peak_bytes"] <= int(peak * 0.8)
    for bad in (0, -1, 1.5, "1000", None):
        with pytest.raises(gc.CompileError, match="positive int"):
            gc.Budget(bad)
    with pytest.raises(gc.CompileError, match="auto, dp, milp, greedy"):
        gc.Budget(1000, method="revolve")


def test_on_the_residual_net_the_model_is_exact_or_errs_on_the_safe_side():
    g, model = _model(GRAPHS["residual"])
    forward = forward_ids(g)
    limit = model.peak([(0, len(model.a), True)]) * 3 // 4
    _, plan = budget.solve_dp(model, limit)
    remat = budget._realize(g, forward, activation_ids(g, forward), model, plan)
    real = pipeline.plan_steps(remat, True)[2].peak_bytes
    assert real <= model.peak(plan)  # the model is exact or errs on the safe side
