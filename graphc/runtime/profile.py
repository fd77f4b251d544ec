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

from ..errors import GraphcError
from ..ir import dtypes as dt


def example_arguments(graph, seed: int = 0) -> dict:
    """Arguments for every input and param: small normal floats, zero integers and booleans
    (zeros are valid wherever an integer is an index or a label)."""
    rng = np.random.default_rng(seed)
    return {name: (0.1 * rng.standard_normal(v.shape)).astype(v.dtype) if dt.is_float(v.dtype)
            else np.zeros(v.shape, v.dtype) for name, v in graph.arguments.items()}


def budget_bytes(graph, budgets) -> list:
    """Budgets as bytes: ints stay, "60%" is that share of the ``none`` plan's planned peak."""
    from ..passes.pipeline import compile

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


def profile_remat(graph, strategies=("none", "sqrt", "mincut"), budgets=(), inputs=None, repeat: int = 5,
                  target: str = "cpu") -> list:
    """One row per strategy, then one per budget (bytes, or "60%" of the ``none`` plan's peak):
    ``strategy``, ``planned_peak_bytes``, ``measured_peak_bytes``, ``saved_bytes``,
    ``recompute_flops``, ``recompute_pct`` (of the forward's flops), ``time_s`` (median of
    ``repeat`` calls) and the ``executable`` itself, each compiled for ``target``."""
    from ..passes.budget import Budget
    from ..passes.pipeline import compile

    arrays = example_arguments(graph) if inputs is None else inputs
    plans = list(strategies) + [Budget(b) for b in budget_bytes(graph, budgets)]
    rows = []
    for strategy in plans:
        fn = compile(graph, target=target, remat=strategy)
        fn(**arrays)  # numba compiles (or loads) the kernels on the first call
        measured = fn.profile(**arrays)["peak_bytes"]
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn(**arrays)
            times.append(time.perf_counter() - t)
        st = fn.stats
        rows.append({"strategy": st["remat"], "planned_peak_bytes": st["peak_bytes"],
                     "measured_peak_bytes": measured, "saved_bytes": st["saved_bytes"],
                     "recompute_flops": st["recompute_flops"],
                     "recompute_pct": 100 * st["recompute_flops"] / max(st["forward_flops"], 1),
                     "time_s": statistics.median(times), "executable": fn})
    return rows


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MB"


def format_table(rows: list) -> str:
    base = rows[0]["time_s"]
    width = max(10, *(len(r["strategy"]) + 2 for r in rows))
    lines = [f"{'strategy':<{width}}{'planned peak':>14}{'measured peak':>15}{'saved':>12}"
             f"{'recompute':>16}{'step':>11}{'time':>8}"]
    for r in rows:
        lines.append(f"{r['strategy']:<{width}}{_mb(r['planned_peak_bytes']):>14}{_mb(r['measured_peak_bytes']):>15}"
                     f"{_mb(r['saved_bytes']):>12}{r['recompute_flops']:>10.3g} {r['recompute_pct']:>4.0f}%"
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


def plot_pareto(rows: list, path: str) -> None:
    """Planned and measured peak memory against recompute overhead, one point per plan."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = sorted(rows, key=lambda r: r["recompute_pct"])
    xs = [r["recompute_pct"] for r in rows]
    ax.plot(xs, [r["planned_peak_bytes"] / 2**20 for r in rows], "o-", label="planned peak")
    ax.plot(xs, [r["measured_peak_bytes"] / 2**20 for r in rows], "x", label="measured peak")
    for r, x in zip(rows, xs):
        ax.annotate(r["strategy"], (x, r["planned_peak_bytes"] / 2**20), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("recomputed flops, % of the forward")
    ax.set_ylabel("peak memory (MB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_timeline(rows: list, path: str) -> None:
    """Bytes in use after each step of each plan's schedule."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        live = r["executable"].memory.live_bytes
        ax.plot(range(len(live)), [b / 2**20 for b in live], label=r["strategy"])
    ax.set_xlabel("schedule step")
    ax.set_ylabel("live bytes (MB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
