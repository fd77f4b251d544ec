"""``remat=gc.Budget(bytes=N)``: the least recomputation whose planned peak is at most N bytes.

The search works on a *segment model* of the forward. The spine (the loss's dominators, see
``remat``) cuts the forward into blocks; block i holds ``a[i]`` bytes of activations for the
backward when it keeps them (what ``remat="none"`` saves there), costs ``f[i]`` flops to run
again, and ends in a spine value of ``s[i]`` bytes. A plan splits the blocks into consecutive
segments. A *stored* segment keeps its activations; a *recomputed* one keeps nothing of its own
and runs again, whole, when the backward reaches it (Chen et al.'s segments, with the choice of
where to cut and which to store). A segment after a recomputed one also keeps the spine value
it starts from (its input: a stored segment's includes it already). The backward takes the
segments last to first; while it works on segment k, memory holds what segments 1..k-1 keep
plus all of segment k's activations:

    peak = base + max_k (sum_{j<k} held_j + A_k + y_k s_k),   held_j = [stored_j] A_j + y_j s_j

with s_k the spine value before segment k and y_k = 1 when the segment before k is recomputed.

where ``base`` is what the ``none`` plan holds beyond the activations (outputs, gradients,
the backward's own buffers). Minimise the recomputed flops subject to peak <= N:
- ``dp``: dynamic programming over segment boundaries with Pareto fronts of (held bytes,
  flops): exact for the model, O(n^2) segments (Griewank and Walther's revolve and Rotor
  solve richer versions of this problem; one level of recomputation keeps the rewrite simple).
- ``milp``: the same model as a mixed-integer program (a path through the segment graph with
  big-M memory constraints), solved by scipy's HiGHS ``milp`` under a time limit; it must
  agree with the DP, and is there to check it and to extend the model.
- ``greedy``: flip the block that frees the most bytes per flop to recomputed, until the
  model fits. Never better than the exact optimum, and reported when worse.

The model is only a model, so the search chooses among real plans: ``none``, ``sqrt``,
``mincut``, the checkpoint marks alone, and the model's Pareto front, each rewritten, fused,
scheduled and planned, cheapest first, until one's real planned peak fits. The candidates do
not depend on the budget: a looser budget never recomputes more, and no named strategy is
better than the budget's plan. A budget below every candidate's peak raises ``BudgetError``
with the least of them.
"""

import time
from dataclasses import dataclass, field

from ..errors import BudgetError, CompileError
from ..ir.ops import flops
from ..ir.printing import to_text
from .analysis import activation_ids, forward_ids, marks, spine
from .remat import Remat, rematerialize, rewrite, unchanged

METHODS = ("auto", "dp", "milp", "greedy")
DP_LIMIT = 100  # blocks: beyond this, auto uses the greedy heuristic (a DP front on 131 blocks: 10 s)


@dataclass(frozen=True)
class Budget:
    """``gc.compile(g, remat=gc.Budget(bytes=N))``: the least recompute whose planned peak is at
    most N bytes. ``method`` picks the search: "auto" (DP, greedy beyond 100 blocks), "dp",
    "milp" (needs scipy) or "greedy"; ``time_limit`` bounds the MILP, in seconds."""

    bytes: int
    method: str = "auto"
    time_limit: float = 10.0

    def __post_init__(self):
        if type(self.bytes) is not int or self.bytes <= 0:
            raise CompileError(f"Budget(bytes={self.bytes!r}): the budget must be a positive int of bytes")
        if self.method not in METHODS:
            raise CompileError(f"Budget(method={self.method!r}): choose one of {', '.join(METHODS)}")


@dataclass
class Model:
    """The segment model: per block, activation bytes ``a``, spine bytes ``s``, forward flops ``f``."""

    a: list
    s: list
    f: list
    base: int
    blocks: list = field(default_factory=list)  # forward value ids of each block, in order

    def peak(self, plan) -> int:
        held, peak, after_recomputed = 0, 0, False
        for lo, hi, stored in plan:
            span = sum(self.a[lo:hi])
            restart = self.before(lo) if after_recomputed else 0
            peak = max(peak, held + span + restart)
            held += (span if stored else 0) + restart
            after_recomputed = not stored
        return self.base + peak

    def cost(self, plan) -> int:
        return sum(sum(self.f[lo:hi]) for lo, hi, stored in plan if not stored)

    def before(self, lo: int) -> int:
        """Bytes of the spine value a segment starting at block ``lo`` is recomputed from."""
        return self.s[lo - 1] if lo else 0


def build_model(graph, forward, none_saved: dict, none_peak: int) -> Model | None:
    """Blocks from the spine, sized from the ``none`` plan (``none_saved``: id -> bytes)."""
    line = spine(graph, forward)
    if not line:
        return None
    cuts = line if line[-1] == max(forward) else line + [max(forward)]
    blocks, start = [], 0
    for end in cuts:
        blocks.append([i for i in sorted(forward) if start < i <= end or (start == 0 and i == 0)])
        start = end
    a = [sum(none_saved.get(i, 0) for i in b) for b in blocks]
    f = [sum(flops(graph.nodes[i]) for i in b) for b in blocks]
    s = [graph.nodes[b[-1]].type.nbytes for b in blocks]
    return Model(a, s, f, max(none_peak - sum(a), 0), blocks)


# ------------------------------------------------------------------ solvers


def solve_dp(model: Model, limit: int):
    """Least-cost plan with model peak <= limit, or None: (cost, plan)."""
    n = len(model.a)
    room = limit - model.base
    prefix = [0]
    for x in model.a:
        prefix.append(prefix[-1] + x)
    fprefix = [0]
    for x in model.f:
        fprefix.append(fprefix[-1] + x)
    # boundary -> {(held bytes, segment before was recomputed): (cost, plan)}
    fronts = [dict() for _ in range(n + 1)]
    fronts[0][0, False] = (0, ())
    for lo in range(n):
        for after_recomputed in (False, True):
            states = {held: cp for (held, y), cp in fronts[lo].items() if y == after_recomputed}
            restart = model.before(lo) if after_recomputed else 0
            for held, (cost, plan) in _pareto(states):
                for hi in range(lo + 1, n + 1):
                    span = prefix[hi] - prefix[lo]
                    if held + span + restart > room:
                        break
                    for stored in (True, False):
                        key = (held + (span if stored else 0) + restart, not stored)
                        new_cost = cost + (0 if stored else fprefix[hi] - fprefix[lo])
                        old = fronts[hi].get(key)
                        if old is None or new_cost < old[0]:
                            fronts[hi][key] = (new_cost, plan + ((lo, hi, stored),))
    if not fronts[n]:
        return None
    return min(fronts[n].values(), key=lambda cp: (cp[0], model.peak(cp[1])))


def _pareto(front: dict) -> list:
    """(held, (cost, plan)) pairs not beaten on both held bytes and cost, fewest bytes first."""
    out, best = [], None
    for held in sorted(front):
        cost = front[held][0]
        if best is None or cost < best:
            out.append((held, front[held]))
            best = cost
    return out


def solve_milp(model: Model, limit: int, time_limit: float = 10.0):
    """The same problem for scipy's HiGHS: binary x per segment (lo, hi, stored) forming one
    path from boundary 0 to n; continuous H per boundary, the bytes held there; y per boundary,
    1 when the segment ending there is recomputed."""
    try:
        import numpy as np
        from scipy.optimize import Bounds, LinearConstraint, milp
    except ImportError:
        raise CompileError("Budget(method='milp') needs scipy: pip install scipy") from None
    n = len(model.a)
    arcs = [(lo, hi, stored) for lo in range(n) for hi in range(lo + 1, n + 1) for stored in (True, False)]
    nx_, nh = len(arcs), n + 1
    ny = n + 1  # variables: x (arcs), H (boundaries), y (boundaries)
    big = sum(model.a) + sum(model.s) + 1
    room = limit - model.base
    rows, lower, upper = [], [], []

    def row(coeffs, lo, hi):
        r = np.zeros(nx_ + nh + ny)
        for k, c in coeffs:
            r[k] += c
        rows.append(r)
        lower.append(lo)
        upper.append(hi)

    for node in range(n + 1):  # flow conservation: one path 0 -> n
        coeffs = [(k, 1.0) for k, (lo, hi, _) in enumerate(arcs) if hi == node]
        coeffs += [(k, -1.0) for k, (lo, hi, _) in enumerate(arcs) if lo == node]
        need = -1.0 if node == 0 else (1.0 if node == n else 0.0)
        row(coeffs, need, need)
    y0 = nx_ + nh
    for node in range(n + 1):  # y[node] = the arc into node is a recomputed segment
        row([(y0 + node, 1.0)] + [(k, -1.0) for k, (lo, hi, st) in enumerate(arcs) if hi == node and not st], 0, 0)
    for k, (lo, hi, stored) in enumerate(arcs):
        span = sum(model.a[lo:hi])
        restart = model.before(lo)
        # H[hi] >= H[lo] + [stored] span + y[lo] restart when the arc is used
        row([(nx_ + hi, 1.0), (nx_ + lo, -1.0), (y0 + lo, -restart), (k, -big)],
            (span if stored else 0) - big, np.inf)
        # H[lo] + span + y[lo] restart <= room when the arc is used
        row([(nx_ + lo, 1.0), (y0 + lo, restart), (k, big)], -np.inf, room - span + big)
    cost = np.array([sum(model.f[lo:hi]) if not stored else 0 for lo, hi, stored in arcs] + [0.0] * (nh + ny),
                    dtype=float)
    cost[:nx_] += 1e-9 * np.arange(nx_) / max(nx_, 1)  # a fixed tie-break: results do not depend on HiGHS's order
    integrality = np.array([1] * nx_ + [0] * (nh + ny))
    bounds = Bounds(np.zeros(nx_ + nh + ny), np.array([1.0] * nx_ + [np.inf] * nh + [1.0] * ny))
    bounds.lb[nx_] = bounds.ub[nx_] = 0.0  # nothing held before the first segment
    res = milp(cost, constraints=LinearConstraint(np.array(rows), lower, upper), integrality=integrality,
               bounds=bounds, options={"time_limit": time_limit})
    if res.x is None:
        return None
    plan, node = [], 0
    used = {arcs[k][0]: arcs[k] for k in range(nx_) if res.x[k] > 0.5}
    while node < n:
        lo, hi, stored = used[node]
        plan.append((lo, hi, stored))
        node = hi
    plan = tuple(plan)
    return model.cost(plan), plan


def solve_greedy(model: Model, limit: int):
    """The first of the heuristic's plans (``greedy_plans``) that fits, or None."""
    for plan in greedy_plans(model):
        if model.peak(plan) <= limit:
            return model.cost(plan), plan
    return None


def greedy_plans(model: Model):
    """Flip stored blocks to recomputed singleton segments, most bytes saved per flop first,
    then merge neighbouring recomputed segments while that lowers the peak: every plan on the
    way, each with a lower model peak than the one before."""
    n = len(model.a)
    plan = [(i, i + 1, True) for i in range(n)]
    while True:
        yield tuple(plan)
        best = None
        for k, (lo, hi, stored) in enumerate(plan):
            if stored:
                trial = plan[:k] + [(lo, hi, False)] + plan[k + 1:]
                gain = model.peak(plan) - model.peak(trial)
                score = gain / max(sum(model.f[lo:hi]), 1)
                if gain > 0 and (best is None or score > best[0]):
                    best = (score, trial)
        if best is None:
            plan = _merge_once(model, plan)
            if plan is None:
                return
        else:
            plan = best[1]


def _merge_once(model, plan):
    best = None
    for k in range(len(plan) - 1):
        (lo, mid, s1), (_, hi, s2) = plan[k], plan[k + 1]
        if not s1 and not s2:
            trial = plan[:k] + [(lo, hi, False)] + plan[k + 2:]
            if model.peak(trial) < model.peak(plan) and (best is None or model.peak(trial) < model.peak(best)):
                best = trial
    return best


SOLVERS = {"dp": solve_dp, "milp": solve_milp, "greedy": solve_greedy}


# ------------------------------------------------------------------ the search


def search(graph, budget: Budget, none_plan, plan_peak) -> Remat:
    """The least recompute whose real planned peak fits ``budget``, among a fixed set of
    candidate plans: ``none``, ``sqrt``, ``mincut``, the checkpoint marks alone, and the
    segment model's Pareto front (every plan the solver finds least costly for some model
    peak; at most ``FRONT_LIMIT`` of them). The set does not depend on the budget, so a looser
    budget never gets a plan that recomputes more, and no named strategy is ever better.

    ``none_plan``: (peak bytes, {saved id: bytes}) of ``remat="none"``; ``plan_peak(remat)``:
    the planned peak of a rewritten graph."""
    forward = forward_ids(graph)
    needed = activation_ids(graph, forward)
    none_peak, none_saved = none_plan
    if none_peak <= budget.bytes:
        return unchanged(graph, "budget", forward, needed, note=f"the plan without recompute fits ({none_peak:,} bytes)")
    start = time.perf_counter()
    model = build_model(graph, forward, none_saved, none_peak)
    method = budget.method
    if method == "auto":
        method = "dp" if model is None or len(model.a) <= DP_LIMIT else "greedy"
    candidates = _candidates(graph, forward, needed, model, method, budget.time_limit)
    least = none_peak
    for label, plan, remat in sorted(candidates, key=lambda c: c[2].recompute_flops):
        peak = plan_peak(remat)
        least = min(least, peak)
        if peak <= budget.bytes:
            remat.note = _note(method, label, plan, model, peak, budget.bytes, len(candidates),
                               time.perf_counter() - start)
            return remat
    raise BudgetError(f"Budget({budget.bytes:,} bytes) is below the least planned peak this graph reaches: "
                      f"{least:,} bytes (remat='none' needs {none_peak:,}; tried {len(candidates)} plans)", least)


FRONT_LIMIT = 16  # model plans realized: the leanest and the rest of the front evenly spaced
LEANEST = 6


def _candidates(graph, forward, needed, model, method, time_limit) -> list:
    """(label, segment plan or None, Remat) of every candidate, one per distinct keep set."""
    named = [(name, None, rematerialize(graph, name)) for name in ("sqrt", "mincut")]
    saved = {vid for vid, save in marks(graph).items() if save and vid in forward}
    if saved:
        named.append(("checkpoint marks", None, rewrite(graph, forward, needed, saved, "budget")))
    plans = [] if model is None else _front(model, method, time_limit)
    out, seen = [], set()
    for label, plan, remat in named + [("segment plan", p, _realize(graph, forward, needed, model, p))
                                       for p in plans]:
        key = to_text(remat.graph)
        if key not in seen:
            seen.add(key)
            remat.strategy = "budget"
            out.append((label, plan, remat))
    return out


def _front(model: Model, method: str, time_limit: float) -> list:
    """Plans of the model's Pareto front, loosest first: the solver's cheapest plan under model
    peaks evenly spaced from the loosest down to the least it reaches, then the leanest six
    (one solve each, so a large model costs a bounded number of solves); thinned to
    ``FRONT_LIMIT``. The greedy heuristic gives its whole sequence of plans in one run."""
    if method == "greedy":
        return _thin(list(greedy_plans(model)))
    solve = SOLVERS[method]
    args = (time_limit,) if method == "milp" else ()
    top, steps, plans = model.peak([(0, len(model.a), True)]), 2 * FRONT_LIMIT, []
    for k in range(steps + 1):
        found = solve(model, top - (top - model.base) * k // steps, *args)
        if found is None:
            break
        if found[1] not in plans:
            plans.append(found[1])
    for _ in range(LEANEST):
        found = solve(model, model.peak(plans[-1]) - 1, *args)
        if found is None:
            break
        plans.append(found[1])
    return _thin(plans)


def _thin(plans: list) -> list:
    """At most ``FRONT_LIMIT`` plans: the leanest ones and the rest evenly spaced."""
    if len(plans) <= FRONT_LIMIT:
        return plans
    rest, lean = plans[:-LEANEST], plans[-LEANEST:]
    step = len(rest) / (FRONT_LIMIT - LEANEST)
    return [rest[int(k * step)] for k in range(FRONT_LIMIT - LEANEST)] + lean


def _realize(graph, forward, needed, model, plan) -> Remat:
    """The keep set of a segment plan: stored segments keep everything, and a segment after a
    recomputed one keeps the spine value it starts from; then the marks, then the rewrite."""
    keep, after_recomputed = set(), False
    for lo, hi, stored in plan:
        if stored:
            keep.update(i for b in model.blocks[lo:hi] for i in b)
        if after_recomputed:
            keep.add(model.blocks[lo - 1][-1])
        after_recomputed = not stored
    for vid, save in marks(graph).items():
        if vid in forward:
            (keep.add if save else keep.discard)(vid)
    return rewrite(graph, forward, needed, keep, "budget")


def _note(method, label, plan, model, peak, limit, count, elapsed) -> str:
    text = f"budget search ({method}, {elapsed * 1e3:.0f} ms): {count} candidate plans; chose "
    if plan is None:
        return text + f"{label}, planned {peak:,} bytes"
    segments = " ".join(f"[{lo}-{hi - 1}{'' if stored else ' recomputed'}]" for lo, hi, stored in plan)
    text += (f"the {label} over {len(model.a)} blocks: model peak {model.peak(plan):,} bytes, planned {peak:,}; "
             f"segments {segments}")
    exact = solve_dp(model, limit) if method == "greedy" and len(model.a) <= DP_LIMIT else None
    if exact is not None and exact[0] < model.cost(plan):
        text += (f"; the heuristic recomputes {model.cost(plan) - exact[0]:,} flops more than the exact optimum "
                 f"of the model under this budget")
    return text
