"""The trade-off profiler: ``gc.profile_remat``, the residual report, ``graphc profile`` and its
plots (matplotlib is optional: without it the command says how to install it)."""

import builtins

import numpy as np
import pytest

import compiled  # noqa: F401  (a private kernel cache, inherited by the subprocesses)
import graphc as gc
from graphc.examples import residual_mlp
from graphc import profile
from test_cli import assert_clean_failure, run

STRATEGIES = ["none", "sqrt", "mincut"]


@pytest.fixture(scope="module")
def deep():
    return gc.grad(residual_mlp(6, 32, 1024))  # buffers of 128 KiB: a planned peak of megabytes


@pytest.fixture(scope="module")
def rows(deep):
    return gc.profile_remat(deep, strategies=STRATEGIES, repeat=2)


def test_one_row_per_strategy_with_every_figure(rows):
    assert [r["strategy"] for r in rows] == STRATEGIES
    for r in rows:
        fn = r["executable"]
        assert r["planned_peak_bytes"] == fn.stats["peak_bytes"]
        assert r["saved_bytes"] == fn.stats["saved_bytes"]
        assert r["recompute_flops"] == fn.stats["recompute_flops"]
        assert r["recompute_pct"] == pytest.approx(100 * fn.stats["recompute_flops"] / fn.stats["forward_flops"])
        assert r["time_s"] > 0
        # measured (tracemalloc) against planned: within 15%, plus 64 KiB for the array objects
        # themselves (about 100 bytes per view of the arena) and the call's bookkeeping
        assert r["planned_peak_bytes"] > 1 << 20
        assert abs(r["measured_peak_bytes"] - r["planned_peak_bytes"]) <= 0.15 * r["planned_peak_bytes"] + 65536


def test_the_plans_trade_memory_for_recompute(rows):
    none, sqrt, mincut = rows
    assert none["recompute_flops"] == 0
    assert sqrt["planned_peak_bytes"] < none["planned_peak_bytes"]
    # one more forward, plus the elementwise values the backward recomputes again where it reads them
    assert 0 < sqrt["recompute_flops"] <= 1.1 * sqrt["executable"].stats["forward_flops"]
    assert mincut["saved_bytes"] * 1.5 <= none["saved_bytes"]
    assert 0 < mincut["recompute_pct"] < 50


def test_given_inputs_are_used_and_left_alone(deep):
    args = profile.example_arguments(deep, seed=3)
    before = {k: v.copy() for k, v in args.items()}
    (row,) = gc.profile_remat(deep, strategies=["sqrt"], inputs=args, repeat=1)
    for k in args:
        np.testing.assert_array_equal(args[k], before[k])
    np.testing.assert_array_equal(row["executable"](**args)["loss"],
                                  gc.compile(deep)(**args)["loss"])


def test_example_arguments_are_valid_for_integer_labels():
    g = gc.Graph("cls")
    logits = g.input("logits", (4, 3))
    labels = g.input("labels", (4,), "int64")
    g.output("loss", gc.cross_entropy(logits, labels))
    args = profile.example_arguments(g)
    assert args["labels"].dtype == np.int64 and not args["labels"].any()
    assert np.isfinite(gc.evaluate(g, **args)["loss"])


def test_residuals_list_what_is_saved_and_what_is_recomputed(rows):
    none, sqrt, _ = rows
    saved = [r for r in none["executable"].residuals if r["how"] == "saved"]
    assert sum(r["bytes"] for r in saved) == none["saved_bytes"]
    assert not [r for r in none["executable"].residuals if r["how"] == "recomputed"]
    hows = {r["how"] for r in sqrt["executable"].residuals}
    assert hows == {"saved", "recomputed"}
    for r in sqrt["executable"].residuals:
        v = sqrt["executable"].graph.nodes[r["value"]]
        assert (r["op"], r["shape"], r["bytes"]) == (v.op, v.shape, v.type.nbytes)
    text = profile.format_residuals(sqrt["executable"])
    assert "recomputed" in text and "tanh" in text


def test_table_has_a_line_per_plan(rows):
    lines = profile.format_table(rows).splitlines()
    assert len(lines) == 1 + len(rows)
    assert all(line.split()[0] == s for line, s in zip(lines[1:], STRATEGIES))


def test_plots_say_how_to_get_matplotlib_when_it_is_missing(rows, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(gc.GraphcError, match=r"pip install 'graphc\[plot\]'"):
        profile.plot_pareto(rows, "never.png")


def test_plots_are_written_when_matplotlib_is_installed(rows, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed here")
    profile.plot_pareto(rows, tmp_path / "pareto.png")
    profile.plot_timeline(rows, tmp_path / "timeline.png")
    for name in ("pareto.png", "timeline.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- infeasible budgets and the plot


@pytest.fixture(scope="module")
def mixed():
    """A small net under two strategies, a budget that fits and one no plan reaches."""
    g = gc.grad(residual_mlp(3, 16, 64))
    return g, gc.profile_remat(g, strategies=["none", "mincut"], budgets=["100%", 1], repeat=1)


def test_an_infeasible_budget_is_a_row_and_every_other_row_remains(mixed):
    g, rows = mixed
    assert [r["feasible"] for r in rows] == [True, True, True, False]
    bad = rows[-1]
    assert bad["strategy"] == "Budget(bytes=1)" and bad["budget_bytes"] == 1
    with pytest.raises(gc.BudgetError) as info:
        gc.compile(g, remat=gc.Budget(1))
    assert bad["least_peak_bytes"] == info.value.least_peak_bytes > 1
    assert all(bad[k] is None for k in profile.FIGURES)
    assert rows[2]["budget_bytes"] == rows[0]["planned_peak_bytes"] == rows[2]["planned_peak_bytes"]
    lines = profile.format_table(rows).splitlines()
    assert len(lines) == 1 + len(rows)
    assert lines[-1].split() == ["Budget(bytes=1)", "infeasible:", "the", "least", "planned", "peak", "any", "plan",
                                 "reaches", "is", *profile._size(bad["least_peak_bytes"]).split(),
                                 f"({bad['least_peak_bytes']:,}", "bytes)"]
    assert "x" in lines[1].split()[-1] and "infeasible" not in "".join(lines[:-1])


def test_profiling_a_graph_without_a_backward_says_there_is_nothing_to_trade():
    with pytest.raises(gc.CompileError, match=r"graph 'residual_mlp' has no backward .*nothing to trade.*gc\.grad"):
        gc.profile_remat(residual_mlp(2, 8, 4))


def test_the_frontier_leaves_out_dominated_plans():
    def row(name, pct, peak):
        return {"strategy": name, "feasible": True, "recompute_pct": pct, "planned_peak_bytes": peak}
    a, b, c, d, e = row("a", 0, 10), row("b", 5, 12), row("c", 5, 6), row("d", 9, 6), row("e", 20, 2)
    assert profile.frontier([b, e, a, d, c, {"strategy": "x", "feasible": False}]) == [a, c, e]


def _text_boxes(fig, ax):
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    return {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}


def _synthetic(name, pct, peak, budget=None, least=None):
    """A row as profile_remat makes it, for plots of more plans than a test can afford to compile."""
    row = {"strategy": name, "graph": "synthetic", "budget_bytes": budget, "feasible": least is None}
    if least is None:
        return {**row, "planned_peak_bytes": peak, "measured_peak_bytes": int(peak * 1.02), "recompute_pct": pct,
                "recompute_flops": 1, "saved_bytes": 1, "time_s": 1.0, "executable": None}
    return {**row, "least_peak_bytes": least, **dict.fromkeys(profile.FIGURES)}


MB = 2**20
CROWDED = [_synthetic("none", 0, 8 * MB), _synthetic("sqrt", 0, 8.05 * MB), _synthetic("mincut", 1.5, 7.6 * MB),
           _synthetic("b1", 2.2, 7.4 * MB, budget=int(7.5 * MB)), _synthetic("b2", 50, 5 * MB, budget=5 * MB),
           _synthetic("b3", 55, 6 * MB, budget=int(6.5 * MB)), _synthetic("b4", 0, 0, budget=MB, least=int(1.5 * MB)),
           _synthetic("b5", 0, 0, budget=int(1.3 * MB), least=int(1.5 * MB))]


@pytest.mark.parametrize("case", ["profiled", "crowded"])
def test_pareto_labels_do_not_overlap_and_the_axis_starts_at_zero(mixed, case):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed here")
    rows = mixed[1] if case == "profiled" else CROWDED
    fig, ax = profile.pareto_figure(rows)
    try:
        assert ax.get_ylim()[0] == 0
        assert rows[0]["graph"] in ax.get_title() and "peak memory against recompute" in ax.get_title()
        boxes = _text_boxes(fig, ax)
        frame = ax.get_window_extent(fig.canvas.get_renderer())
        for name, box in boxes.items():
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, name
            assert not [other for other, b in boxes.items() if other != name and box.overlaps(b)], name
        named = ", ".join(boxes)
        for r in rows:  # every plan is labelled, those at one point together
            assert profile._label(r) in named
        scale = profile._unit(max(r["planned_peak_bytes"] or 0 for r in rows))[0]
        dashed = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
        assert dashed == sorted(r["budget_bytes"] / scale for r in rows if not r["feasible"])
    finally:
        profile.pyplot().close(fig)


def test_the_step_line_runs_through_the_frontier_only():
    pytest.importorskip("matplotlib", reason="the plot extra is not installed here")
    fig, ax = profile.pareto_figure(CROWDED)
    try:
        (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        front = profile.frontier(CROWDED)
        assert [r["strategy"] for r in front] == ["none", "mincut", "b1", "b2"]
        assert list(step.get_xdata()) == [r["recompute_pct"] for r in front]
        hollow = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
        assert len(hollow) == 1 and sorted(hollow[0].get_xdata()) == [0, 55]  # sqrt and b3
    finally:
        profile.pyplot().close(fig)


def test_plots_with_an_infeasible_budget_are_written(mixed, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed here")
    profile.plot_pareto(mixed[1], tmp_path / "pareto.png")
    profile.plot_timeline(mixed[1], tmp_path / "timeline.png")
    for name in ("pareto.png", "timeline.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_profile_reports_an_infeasible_budget_and_the_rest(mixed, tmp_path):
    gc.save(mixed[0], tmp_path / "g.json")
    r = run(["profile", "g.json", "--remat", "none", "--budget", "100%,1", "--repeat", "1", "--plot", "p.png"],
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split()[0] == "none" and lines[2].startswith("Budget(bytes=")
    assert lines[3].startswith("Budget(bytes=1) ") and "infeasible" in lines[3]
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_profile_prints_the_table_and_residuals(deep, tmp_path):
    gc.save(deep, tmp_path / "deep.json")
    r = run(["profile", "deep.json", "--remat", "none,sqrt", "--repeat", "1", "--residuals"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:3]] == ["none", "sqrt"]
    assert "residuals of remat 'sqrt'" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--remat", "none,bogus"], ["bogus", "none, sqrt, mincut"]),
    (["--remat", ","], ["--remat"]),
])
def test_cli_profile_rejects_unknown_strategies(deep, tmp_path, args, words):
    gc.save(deep, tmp_path / "deep.json")
    r = run(["profile", "deep.json", *args], cwd=tmp_path)
    assert_clean_failure(r, *words)
