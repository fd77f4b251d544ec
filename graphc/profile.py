"""The memory/compute trade-off of rematerialization, measured: one row per plan.

``profile_remat`` compiles the graph once per strategy and runs each plan on the same
arguments: the planned peak, the measured peak (``Executable.profile``), the bytes kept for the
backward, the recomputed flops (absolute and as a share of the forward) and the median step
time. ``format_table`` and ``format_residuals`` print them; ``plot_pareto`` and
``plot_timeline`` draw them with matplotlib, an optional extra (``pip install graphc[plot]``).
"""

import statistics
import time

import numpy as np

from .compiler import compile
from .errors import BudgetError, CompileError, GraphcError
from .ir import dtypes as dt
from .passes.analysis import activation_ids, forward_ids
from .passes.budget import Budget


def example_arguments(graph, seed: int = 0) -> dict:
    """Arguments for every input and param: small normal floats, zero integers and booleans
    (zeros are valid wherever an integer is an index or a label)."""
    rng = np.random.default_rng(seed)
    return {name: (0.1 * rng.standard_normal(v.shape)).astype(v.dtype) if dt.is_float(v.dtype)
            else np.zeros(v.shape, v.dtype) for name, v in graph.arguments.items()}


def budget_bytes(graph, budgets) -> list:
    """Budgets as bytes: ints stay, "60%" is that share of the ``none`` plan's planned peak."""
    out, base = [], None
    for b in budgets:
        if isinstance(b, str) and b.endswith("%"):
            try:
                share = float(b[:-1]) / 100
            except ValueError:
                raise GraphcError(f"budget {b!r}: expected a percentage like 60% or a number of bytes") from None
            if base is None:
                base = compile(graph).stats["peak_bytes"]
            out.append(max(1, int(base * share)))
        else:
            try:
                out.append(int(b))
            except (TypeError, ValueError):
                raise GraphcError(f"budget {b!r}: expected a percentage like 60% or a number of bytes") from None
    return out


# what a compiled plan's row adds to the plan; None in an infeasible budget's row
FIGURES = ("planned_peak_bytes", "measured_peak_bytes", "saved_bytes", "recompute_flops", "recompute_pct",
           "time_s", "executable")


def profile_remat(graph, strategies=("none", "sqrt", "mincut"), budgets=(), inputs=None, repeat: int = 5,
                  target: str = "cpu") -> list:
    """One row per strategy, then one per budget (bytes, or "60%" of the ``none`` plan's peak),
    each compiled for ``target``: ``strategy``, ``graph`` (its name), ``budget_bytes`` (None for
    a strategy), ``feasible``, ``planned_peak_bytes``, ``measured_peak_bytes``, ``saved_bytes``,
    ``recompute_flops``, ``recompute_pct`` (of the forward's flops), ``time_s`` (median of
    ``repeat`` calls) and the ``executable`` itself. A budget below the least peak any plan
    reaches gives a row with ``feasible`` False, that peak as ``least_peak_bytes`` and None for
    every measured figure, so one infeasible budget does not lose the other rows."""
    if not has_backward(graph):
        raise CompileError(f"{no_backward(graph)}; profile its gradient graph, gc.grad(graph)")
    arrays = example_arguments(graph) if inputs is None else inputs
    plans = list(strategies) + [Budget(b) for b in budget_bytes(graph, budgets)]
    rows = []
    for strategy in plans:
        budget = strategy.bytes if isinstance(strategy, Budget) else None
        row = {"strategy": strategy if budget is None else f"Budget(bytes={budget})", "graph": graph.name,
               "budget_bytes": budget, "feasible": True}
        try:
            fn = compile(graph, target=target, remat=strategy)
        except BudgetError as e:
            rows.append({**row, "feasible": False, "least_peak_bytes": e.least_peak_bytes,
                         **dict.fromkeys(FIGURES)})
            continue
        fn(**arrays)  # numba compiles (or loads) the kernels on the first call
        measured = fn.profile(**arrays)["peak_bytes"]
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn(**arrays)
            times.append(time.perf_counter() - t)
        st = fn.stats
        rows.append({**row, "planned_peak_bytes": st["peak_bytes"],
                     "measured_peak_bytes": measured, "saved_bytes": st["saved_bytes"],
                     "recompute_flops": st["recompute_flops"],
                     "recompute_pct": 100 * st["recompute_flops"] / max(st["forward_flops"], 1),
                     "time_s": statistics.median(times), "executable": fn})
    return rows


def has_backward(graph) -> bool:
    """Whether a backward reads any forward activation: without one there is nothing to trade,
    and every remat plan is the graph unchanged."""
    return bool(activation_ids(graph, forward_ids(graph)))


def no_backward(graph) -> str:
    """Why remat has nothing to trade in ``graph`` (for which ``has_backward`` is False)."""
    why = "nothing but its loss reads the forward" if forward_ids(graph) else "no scalar float loss output"
    return f"graph {graph.name!r} has no backward ({why}), so remat has nothing to trade"


def _size(n: int) -> str:
    """Bytes in the largest unit (B, KB, MB, GB; powers of 1024) that keeps them at least 1."""
    scale, unit = _unit(n)
    return f"{n} B" if scale == 1 else f"{n / scale:.2f} {unit}"


def _unit(n: int) -> tuple[int, str]:
    for scale, unit in ((2**30, "GB"), (2**20, "MB"), (2**10, "KB")):
        if n >= scale:
            return scale, unit
    return 1, "B"


def format_table(rows: list) -> str:
    """One line per row; an infeasible budget's line says so and gives the least reachable peak.
    Step times are relative to the first plan that compiled."""
    base = next((r["time_s"] for r in rows if r["feasible"]), None)
    width = max(10, *(len(r["strategy"]) + 2 for r in rows))
    lines = [f"{'strategy':<{width}}{'planned peak':>14}{'measured peak':>15}{'saved':>12}"
             f"{'recompute':>16}{'step':>11}{'time':>8}"]
    for r in rows:
        if not r["feasible"]:
            least = r["least_peak_bytes"]
            lines.append(f"{r['strategy']:<{width}}  infeasible: the least planned peak any plan reaches is "
                         f"{_size(least)}" + (f" ({least:,} bytes)" if least >= 1024 else ""))
            continue
        lines.append(f"{r['strategy']:<{width}}{_size(r['planned_peak_bytes']):>14}"
                     f"{_size(r['measured_peak_bytes']):>15}{_size(r['saved_bytes']):>12}"
                     f"{r['recompute_flops']:>10.3g} {r['recompute_pct']:>4.0f}%"
                     f"{r['time_s'] * 1e3:>9.2f}ms{r['time_s'] / base:>7.2f}x")
    return "\n".join(lines) + "\n"


def format_residuals(fn) -> str:
    """What the backward keeps from the forward (saved) or computes again (recomputed)."""
    lines = [f"residuals of remat {fn.stats['remat']!r}:"]
    for r in fn.residuals:
        lines.append(f"  %{r['value']:<6}{r['how']:<12}{r['op']:<12}{r['dtype']}{list(r['shape'])}  {r['bytes']:,} bytes")
    return "\n".join(lines) + "\n"


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GraphcError("plotting needs matplotlib: pip install 'graphc[plot]' (or pip install matplotlib)") from None
    return plt


def _label(r) -> str:
    return r["strategy"] if r["budget_bytes"] is None else f"budget {_size(r['budget_bytes'])}"


def _infeasible(r) -> str:
    return f"{_label(r)}: infeasible (least peak {_size(r['least_peak_bytes'])})"


def frontier(rows: list) -> list:
    """The plans no other plan beats on both planned peak and recompute, by recompute: the
    Pareto frontier of the trade-off (feasible rows only)."""
    def cost(r):
        return r["recompute_pct"], r["planned_peak_bytes"]

    def beats(o, r):
        return cost(o) != cost(r) and all(a <= b for a, b in zip(cost(o), cost(r)))

    ok = [r for r in rows if r["feasible"]]
    return sorted((r for r in ok if not any(beats(o, r) for o in ok)), key=cost)


LEADER = dict(arrowstyle="-", color="0.6", lw=0.6, shrinkB=3)  # from a moved label to its point
LINE = 11  # points: a line of 8-point text
# where a label may go, in points from what it labels, best first: beside a point (right, then
# left; then a line of text further down or up at a time), or along a dashed line
BESIDE = [(dx, dy) for dy in [4] + [d for k in range(1, 12) for d in (-k * LINE, 4 + k * LINE)] for dx in (6, -6)]
ALONG = [(8 + 40 * k, dy) for dy in (0, 7) for k in range(12)]  # on the line, else just above it


def pareto_figure(rows: list):
    """The figure ``plot_pareto`` writes, as ``(fig, ax)``: planned peaks on a step line through
    the frontier, dominated plans hollow, measured peaks as crosses, each infeasible budget a
    dashed line at its bytes; the y-axis starts at 0, and no two labels overlap."""
    plt = pyplot()
    ok = [r for r in rows if r["feasible"]]
    bad = [r for r in rows if not r["feasible"]]
    sizes = [r[k] for r in ok for k in ("planned_peak_bytes", "measured_peak_bytes")] + [r["budget_bytes"] for r in bad]
    scale, unit = _unit(max(sizes, default=1))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = frontier(rows)
    ax.step([r["recompute_pct"] for r in front], [r["planned_peak_bytes"] / scale for r in front], "-",
            where="post", color="C0", zorder=1, label="Pareto frontier (planned peaks)")
    on = {id(r) for r in front}
    for group, style in (([r for r in ok if id(r) in on], dict(color="C0", label="planned peak")),
                         ([r for r in ok if id(r) not in on], dict(color="C0", markerfacecolor="none",
                                                                   label="planned peak, dominated"))):
        if group:
            ax.plot([r["recompute_pct"] for r in group], [r["planned_peak_bytes"] / scale for r in group], "o",
                    zorder=3, **style)
    if ok:
        ax.plot([r["recompute_pct"] for r in ok], [r["measured_peak_bytes"] / scale for r in ok], "x", color="C1",
                zorder=2, label="measured peak")
    for k, r in enumerate(bad):
        ax.axhline(r["budget_bytes"] / scale, ls="--", color="C3", lw=1,
                   label=None if k else f"infeasible budget (least reachable peak {_size(r['least_peak_bytes'])})")
    xmax = max([r["recompute_pct"] for r in ok] + [1])
    ax.set_xlim(-0.04 * xmax, 1.1 * xmax)
    ax.set_ylim(0, 1.2 * max(sizes, default=1) / scale)
    ax.set_xlabel("recomputed flops, % of the forward")
    ax.set_ylabel(f"peak memory ({unit})")
    ax.set_title(f"{rows[0]['graph']}: peak memory against recompute, per remat plan", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    # labels, made once the layout is final: plans whose points (or budgets whose lines) lie
    # within a few pixels of each other share one
    labels = [(ax.annotate(text, xy, BESIDE[0], textcoords="offset points", fontsize=8, arrowprops=LEADER), BESIDE)
              for xy, text in _clusters(ax, [((r["recompute_pct"], r["planned_peak_bytes"] / scale), _label(r))
                                             for r in ok])]
    labels += [(ax.annotate(text, (0, y), ALONG[0], xycoords=("axes fraction", "data"), textcoords="offset points",
                            va="center", fontsize=8, color="C3", bbox=dict(boxstyle="square,pad=0.1", fc="white",
                                                                          ec="none")), ALONG)
               for (_, y), text in _clusters(ax, [((0, r["budget_bytes"] / scale), _label(r)) for r in bad])]
    _separate(fig, ax, labels)
    return fig, ax


def _clusters(ax, items, near: float = 6) -> list:
    """``(data point, name)`` items merged where their points are within ``near`` pixels of a
    group's first (highest) point: ``(that point, "name, name")``, names from the top down."""
    groups = []
    for xy, name in sorted(items, key=lambda item: (-item[0][1], item[0][0])):
        px, py = ax.transData.transform(xy)
        group = next((g for g in groups if abs(g[0] - px) <= near and abs(g[1] - py) <= near), None)
        if group:
            group[3].append(name)
        else:
            groups.append((px, py, xy, [name]))
    return [(xy, ", ".join(names)) for _, _, xy, names in groups]


def _separate(fig, ax, labels) -> None:
    """Move labels apart: each ``(annotation, offsets)`` in turn takes its first offset where
    its text stays inside the axes and overlaps no label placed before it, no marker and not
    the legend. A label moved off its point gets a leader line."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [ax.get_legend().get_window_extent(renderer)]
    for line in ax.get_lines():
        if line.get_marker() not in ("None", None, ""):
            taken += [Bbox.from_bounds(x - 4, y - 4, 8, 8) for x, y in ax.transData.transform(line.get_xydata())]

    def place(a, offsets, k):
        a.set_position(offsets[k])
        a.set_horizontalalignment("left" if offsets[k][0] > 0 else "right")
        if a.arrow_patch:
            a.arrow_patch.set_visible(k > 1)
        a.update_positions(renderer)
        return Text.get_window_extent(a, renderer)  # the text alone, without the leader

    for a, offsets in sorted(labels, key=lambda label: -label[0].xy[1]):
        for k in range(len(offsets)):
            box = place(a, offsets, k)
            if (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                    and not any(box.overlaps(t) for t in taken)):
                break
        else:  # nowhere free: the first place, overlapping
            box = place(a, offsets, 0)
        taken.append(box)


def plot_pareto(rows: list, path: str) -> None:
    """Planned and measured peak memory against recompute overhead, one point per plan."""
    fig, _ = pareto_figure(rows)
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def plot_timeline(rows: list, path: str) -> None:
    """Bytes in use after each step of each plan's schedule; infeasible budgets are listed
    under the plot."""
    plt = pyplot()
    ok = [r for r in rows if r["feasible"]]
    scale, unit = _unit(max((max(r["executable"].memory.live_bytes, default=1) for r in ok), default=1))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = {}  # plans with one schedule share a curve
    for r in ok:
        curves.setdefault(tuple(r["executable"].memory.live_bytes), []).append(_label(r))
    for live, names in curves.items():
        ax.plot(range(len(live)), [b / scale for b in live], label=", ".join(names))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("schedule step")
    ax.set_ylabel(f"live bytes ({unit})")
    ax.set_title(f"{rows[0]['graph']}: bytes live after each step, per remat plan", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    bad = [_infeasible(r) for r in rows if not r["feasible"]]
    fig.tight_layout(rect=(0, 0.06 if bad else 0, 1, 1))
    if bad:
        fig.text(0.01, 0.01, "not drawn: " + "; ".join(bad), fontsize=8, color="C3")
    fig.savefig(path, dpi=120)
    plt.close(fig)
