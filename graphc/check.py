"""``gc.check_grads``: a user's check of graphc's derivatives against finite differences.

graphc derives gradients by rules (``passes/autodiff``); a user who builds a model from its ops,
or who adds an op and its rules, wants evidence that those rules are right at the user's own
point, independent of the rules themselves. Central finite differences of the *forward* graph,
run by the numpy reference interpreter in float64, are that evidence: they never touch
autodiff. The pieces that the project's own gradient tests (``tests/gradcheck.py``) share with
this check live here too: the random projection of the outputs, per-element central
differences, and the graph extensions for Hessian-vector products.
"""

import math
import operator
from dataclasses import dataclass
from functools import reduce
from numbers import Integral, Real

import numpy as np

from .errors import ArgumentError, DTypeError, GradientCheckError
from .ir import build as b
from .ir import dtypes as dt
from .ir.graph import Graph
from .ir.interpret import bind_arguments, evaluate
from .ir.ops import OPS
from .passes.autodiff import grad, jvp, vjp, wrt_names

EPS = 2.0 ** -20  # ~9.5e-7: a power of two, so a step of a quantized number is exact
RTOL = 1e-5
ATOL = 1e-7
MAX_ELEMENTS = 64  # larger arguments are checked along random directions, not element by element
DIRECTIONS = 4
MODES = ("rev", "fwd")


# ---------------------------------------------------------------- shared with tests/gradcheck.py


def quantized(rng, shape, scale=1.0):
    """Standard-normal numbers rounded to multiples of 1/8 (exact in float32 and float64)."""
    return np.round(rng.standard_normal(shape) * scale * 8) / 8


def nonzero_quantized(rng, shape):
    """``quantized``, with the zeros moved to +-1/8: no output element goes unweighted."""
    z = rng.standard_normal(shape)
    q = np.round(z * 8) / 8
    return np.where(q == 0, np.copysign(0.125, z), q)


def total(values):
    """The sum of a non-empty list of graph values (or arrays, or numbers)."""
    return reduce(operator.add, values)


class Projection:
    """Fixed random weights that project a graph's outputs to one scalar,
    ``phi = sum_k sum(W_k * o_k + V_k * o_k**2 / 2)``; the quadratic term makes second
    derivatives of linear ops non-trivial. ``shapes`` maps output names to shapes; ``draw(rng,
    shape)`` makes the weights (all the W first, then all the V). Differences of outputs are
    taken before they are weighted, so outputs a step does not touch cancel exactly."""

    def __init__(self, shapes: dict, rng, draw=quantized):
        self.W = {k: draw(rng, s) for k, s in shapes.items()}
        self.V = {k: draw(rng, s) for k, s in shapes.items()}

    def delta_linear(self, plus, minus) -> float:
        """phi_lin(plus) - phi_lin(minus), phi_lin = sum_k sum(W_k * o_k), from two output dicts."""
        return float(sum(np.sum(self.W[k] * (plus[k] - minus[k])) for k in self.W))

    def delta_loss(self, plus, minus) -> float:
        """phi(plus) - phi(minus) for the linear + quadratic projection."""
        return float(sum(np.sum((plus[k] - minus[k]) * (self.W[k] + self.V[k] / 2 * (plus[k] + minus[k])))
                         for k in self.W))

    def add_loss(self, graph: Graph, name: str = "loss"):
        """Add phi of ``graph``'s outputs (those the weights are for) as the scalar output ``name``."""
        outs = {k: graph.outputs[k] for k in self.W}
        return graph.output(name, total([b.sum(v * graph.const(self.W[k], v.dtype)
                                               + (v * v) * graph.const(self.V[k] / 2, v.dtype))
                                         for k, v in outs.items()]))


def add_gv(graph: Graph, grads: dict, prefix: str = "hv_"):
    """Extend a gradient graph with inputs ``<prefix><w>`` (like each gradient in ``grads``,
    name -> Value) and the scalar output ``gv = sum_w grads[w] . <prefix><w>``: its gradient
    (or the JVP of ``grads``) along those inputs is a Hessian-vector product."""
    return graph.output("gv", total([b.sum(g * graph.input(f"{prefix}{w}", g.shape, g.dtype))
                                     for w, g in grads.items()]))


def numeric_gradient(run, args: dict, name: str, eps: float, delta, label: str | None = None) -> np.ndarray:
    """Per-element central differences of a scalar with respect to ``args[name]``: 2 runs an
    element. ``run(args)`` returns outputs, ``delta(plus, minus)`` the scalar's change between
    two of them; the step is the one the argument's dtype really takes."""
    x = np.asarray(args[name])
    out = np.zeros(x.shape, np.float64)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] = x[idx] + eps
        xm[idx] = x[idx] - eps
        h = float(xp[idx]) - float(xm[idx])
        if not h > 0:
            raise ArgumentError(f"check_grads: eps={eps!r} does not move {_at(label or name, idx)} = "
                                f"{float(x[idx])!r}; pass a larger eps")
        out[idx] = delta(run({**args, name: xp}), run({**args, name: xm})) / h
    return out


# ---------------------------------------------------------------- the result


@dataclass(frozen=True)
class Comparison:
    """One analytic derivative against its central differences, summed up by its worst element
    (the one with the largest abs error).

    ``mode`` is "reverse", "forward" or "second order"; ``method`` what gave the analytic side
    ("gc.vjp", "gc.jvp", "reverse over reverse", "forward over reverse"). ``index`` locates the
    worst element in ``argument`` (reverse, second order) or in ``output`` (forward); where
    ``directional`` (an argument above ``max_elements``) it is ``(j,)``, the j-th random
    direction. ``analytic``, ``numeric`` and ``rel_error`` are that element's; ``tolerance`` is
    ``atol + rtol * max|numeric|`` over the comparison, ``ratio = max_abs_error / tolerance``:
    at most 1 passes.
    """

    mode: str
    method: str
    argument: str
    output: str | None
    directional: bool
    index: tuple
    analytic: float
    numeric: float
    max_abs_error: float
    rel_error: float
    tolerance: float
    ratio: float

    @property
    def passed(self) -> bool:
        return self.ratio <= 1


def _compare(analytic, numeric, rtol, atol, **about) -> Comparison | None:
    a = np.asarray(analytic, np.float64)
    n = np.asarray(numeric, np.float64)
    if not n.size:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(a == n, 0.0, np.abs(a - n))  # equal infinities agree
        err = np.where(np.isnan(err), np.inf, err)
        finite = np.abs(n[np.isfinite(n)])
        tolerance = atol + rtol * (float(finite.max()) if finite.size else 0.0)
        idx = np.unravel_index(int(np.argmax(err)), n.shape)
        worst = float(err[idx])
        rel = 0.0 if worst == 0 else worst / abs(float(n[idx])) if n[idx] else math.inf
        ratio = 0.0 if worst == 0 else worst / tolerance if tolerance else math.inf
    return Comparison(index=tuple(int(i) for i in idx), analytic=float(a[idx]), numeric=float(n[idx]),
                      max_abs_error=worst, rel_error=rel, tolerance=tolerance, ratio=ratio, **about)


def _at(name: str, index) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


_WHAT = {"gc.vjp": "the gradient of a fixed random projection of the outputs",
         "gc.jvp": "the tangent along a random direction of the argument",
         "reverse over reverse": "the Hessian-vector product (gc.grad of the gradient)",
         "forward over reverse": "the Hessian-vector product (gc.jvp of the gradient)"}


@dataclass(frozen=True)
class _Options:
    """How a check_grads call differences and compares (see ``check_grads``)."""

    eps: float
    rtol: float
    atol: float
    max_elements: int
    directions: int


def _message(c: Comparison, options: _Options, size: int) -> str:
    eps, rtol, atol = options.eps, options.rtol, options.atol
    if c.directional:
        where = (f"along random direction {c.index[0]} (of 0 to {options.directions - 1}: {c.argument!r} has "
                 f"{size} elements, more than max_elements={options.max_elements}, so its gradient is checked "
                 f"through directional derivatives, not element by element)")
    elif c.output is not None:
        where = f"at output {_at(c.output, c.index)}"
    else:
        where = f"at {_at(c.argument, c.index)}"
    return (f"{c.mode} check failed ({c.method}) for argument {c.argument!r}, {where}: {_WHAT[c.method]} is "
            f"{c.analytic:.10g} analytically but {c.numeric:.10g} by central differences (eps={eps:.3g}); "
            f"abs error {c.max_abs_error:.3g}, rel error {c.rel_error:.3g}, over the tolerance "
            f"atol + rtol * max|numeric| = {c.tolerance:.3g} (atol={atol:g}, rtol={rtol:g})")


# ---------------------------------------------------------------- the float64 twin


def _float64_twin(graph: Graph):
    """``graph`` rebuilt with every float dtype (inputs, params, constants, casts, one_hot) made
    float64, its arguments renamed ``a<i>`` and only its float outputs kept, as ``o<k>``: the
    names the derived graphs add (``cotangent_``, ``grad_``, ``tangent_``, ``loss``, ``gv``,
    ``hv_``) cannot clash with a user's. Returns the twin and the two name maps (user -> twin)."""
    new = Graph(f"{graph.name}_check")
    twin, arg_names = {}, {}
    for v in graph.nodes:
        attrs = dict(v.attrs)
        for key, kind in OPS[v.op].attrs.items():
            if kind == "dtype" and dt.is_float(attrs[key]):
                attrs[key] = "float64"
            elif kind == "array" and attrs[key].dtype.kind == "f":
                attrs[key] = attrs[key].astype(np.float64)
            elif kind == "name":
                attrs[key] = arg_names.setdefault(attrs[key], f"a{len(arg_names)}")
        twin[v] = new.add_node(v.op, [twin[i] for i in v.inputs], attrs)
    out_names = {}
    for name, v in graph.outputs.items():
        if dt.is_float(v.dtype):
            out_names[name] = f"o{len(out_names)}"
            new.output(out_names[name], twin[v])
    return new, arg_names, out_names


def _shifted(args: dict, direction: dict, eps: float):
    """``args`` moved by +-eps along ``direction`` (name -> array), and the direction the steps
    really took in float64: ``(plus - minus) / (2 eps)``."""
    plus, minus, taken = dict(args), dict(args), {}
    for w, d in direction.items():
        plus[w], minus[w] = args[w] + eps * d, args[w] - eps * d
        taken[w] = (plus[w] - minus[w]) / (2 * eps)
    return plus, minus, taken


# ---------------------------------------------------------------- the check


def _check_options(graph, order, modes, options: _Options) -> tuple:
    if not isinstance(graph, Graph):
        raise ArgumentError(f"check_grads: expected a gc.Graph, got {type(graph).__name__}")
    if isinstance(order, bool) or order not in (1, 2):
        raise ArgumentError(f"check_grads: order must be 1 or 2, got {order!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        got = f"got {unknown[0]!r}" if unknown else "got none"
        raise ArgumentError(f"check_grads: modes takes one or more of {', '.join(map(repr, MODES))}, {got}")
    for name, value, least in (("eps", options.eps, 0.0), ("rtol", options.rtol, None), ("atol", options.atol, None)):
        if (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0
                or (least is not None and value <= least)):
            need = "a positive" if least is not None else "a non-negative"
            raise ArgumentError(f"check_grads: {name} must be {need} finite number, got {value!r}")
    for name, value, least in (("max_elements", options.max_elements, 0), ("directions", options.directions, 1)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
            raise ArgumentError(f"check_grads: {name} must be an int >= {least}, got {value!r}")
    return modes


def _default_wrt(graph) -> list[str]:
    params = [n for n, v in graph.params.items() if dt.is_float(v.dtype)]
    return params or [n for n, v in graph.inputs.items() if dt.is_float(v.dtype)]


def check_grads(graph, arrays, order=1, modes=("rev", "fwd"), wrt=None, eps=EPS, rtol=RTOL, atol=ATOL, seed=0,
                *, max_elements=MAX_ELEMENTS, directions=DIRECTIONS):
    """Check ``graph``'s derivatives at ``arrays`` against central finite differences.

    ``graph`` is any gc.Graph with float outputs; ``arrays`` maps every input and param name to
    its array (a missing, extra, wrongly shaped or typed one raises the error ``gc.evaluate``
    would). ``wrt`` names the float arguments to check: by default the float params, as
    ``gc.grad`` differentiates; a graph without float params (a function of its inputs) checks
    its float inputs. ``modes``: ``"rev"`` compares ``gc.vjp`` of a fixed random projection
    ``sum_k sum(W_k * o_k)`` of the float outputs; ``"fwd"`` compares ``gc.jvp`` along one random
    direction per argument, every output element. ``order=2`` adds Hessian-vector products of
    ``phi = sum_k sum(W_k * o_k + V_k * o_k**2 / 2)``: reverse over reverse (``gc.grad`` of the
    gradient) with ``"rev"``, forward over reverse (``gc.jvp`` of the gradient) with ``"fwd"``,
    against central differences of the first gradient along a random direction. ``seed`` fixes
    the weights and directions.

    Everything runs in float64 on a copy of the graph in which every float dtype (inputs,
    params, constants, casts, one_hot) is float64, so a float32 graph is checked in float64 and
    the tolerances do not depend on its dtype (a float32 rounding the graph asks for with a cast
    is not reproduced). Finite differences use ``gc.evaluate`` of the forward graph only, with
    step ``eps`` (2**-20, about 1e-6). An element passes when ``|analytic - numeric| <= atol +
    rtol * max|numeric|``, the max over that comparison (one argument's gradient, one output's
    tangent): the rounding noise of a difference scales with the size of what is differenced,
    not with each element, so small elements beside large ones are held to the large ones'
    scale. The caller's arrays are never written.

    Cost: per-element differences take 2 evaluations of the forward graph per element, so only
    arguments of at most ``max_elements`` elements are checked element by element; a larger one
    is checked along ``directions`` random directions d instead (``grad . d`` against the
    difference along d, 2 evaluations each), which finds a wrong gradient but not which element.
    The forward check costs 2 evaluations per argument, second order 2 of the gradient graph.

    Returns a tuple of ``Comparison``s, one per (mode, argument[, output]), each with the worst
    element and its errors (``max(c.max_abs_error for c in result)`` is the largest error seen).
    Raises ``GradientCheckError`` at the first that fails, naming the mode, argument, worst
    index, analytic and numeric values, errors and tolerances (the Comparison is its
    ``comparison``). Points where the function is not differentiable (relu at 0, ties of max)
    or where ``stop_gradient`` cuts a dependency fail by design.
    """
    options = _Options(eps, rtol, atol, max_elements, directions)
    modes = _check_options(graph, order, modes, options)
    wrt = wrt_names(graph, _default_wrt(graph) if wrt is None else wrt)
    if not wrt:
        raise ArgumentError(f"check_grads: nothing to check: graph {graph.name!r} has no float inputs or params "
                            f"(wrt={wrt!r})")
    bound = bind_arguments(graph, arrays)
    g64, arg_names, out_names = _float64_twin(graph)
    if not out_names:
        raise DTypeError(f"check_grads: graph {graph.name!r} has no float outputs to differentiate "
                         f"(its outputs: {', '.join(graph.outputs) or 'none'})")
    args = {arg_names[v.name]: np.array(a, np.float64 if dt.is_float(v.dtype) else a.dtype)
            for v, a in bound.items()}
    check = _Check(g64, args, [arg_names[w] for w in wrt], {t: n for n, t in {**arg_names, **out_names}.items()},
                   np.random.default_rng(seed), options)
    if "rev" in modes:
        check.reverse()
    if "fwd" in modes:
        check.forward()
    if order == 2:
        check.second_order(modes)
    return tuple(check.results)


class _Check:
    """The state of one check_grads call: the float64 twin, its arguments (twin names), the
    arguments to check, the names to report (twin -> user), the projection and the options."""

    def __init__(self, g64, args, ws, user, rng, options: _Options):
        self.g64, self.args, self.ws, self.user, self.rng, self.options = g64, args, ws, user, rng, options
        self.eps, self.max_elements, self.directions = options.eps, options.max_elements, options.directions
        self.proj = Projection({o: v.shape for o, v in g64.outputs.items()}, rng, nonzero_quantized)
        self.results = []

    def run(self, args):
        return evaluate(self.g64, **args)

    def record(self, analytic, numeric, mode, method, w, output=None, directional=False):
        """Compare; keep the Comparison, or raise GradientCheckError where it fails."""
        c = _compare(analytic, numeric, self.options.rtol, self.options.atol, mode=mode, method=method,
                     argument=self.user[w], output=None if output is None else self.user[output],
                     directional=directional)
        if c is None:
            return
        if not c.passed:
            raise GradientCheckError(_message(c, self.options, self.args[w].size), c)
        self.results.append(c)

    def reverse(self):
        """gc.vjp with cotangents W against differences of sum_k sum(W_k * o_k): per element, or
        along random directions for an argument above max_elements."""
        proj, eps = self.proj, self.eps
        grads = evaluate(vjp(self.g64, wrt=self.ws), **self.args, **{f"cotangent_{o}": proj.W[o] for o in proj.W})
        for w in self.ws:
            g = grads[f"grad_{w}"]
            if g.size <= self.max_elements:
                numeric = numeric_gradient(self.run, self.args, w, eps, proj.delta_linear, self.user[w])
                self.record(g, numeric, "reverse", "gc.vjp", w)
                continue
            analytic, numeric = [], []
            for _ in range(self.directions):
                plus, minus, taken = _shifted(self.args, {w: self.rng.standard_normal(g.shape)}, eps)
                analytic.append(np.sum(g * taken[w]))
                numeric.append(proj.delta_linear(self.run(plus), self.run(minus)) / (2 * eps))
            self.record(analytic, numeric, "reverse", "gc.vjp", w, directional=True)

    def forward(self):
        """gc.jvp along one random direction per argument against differences of every output."""
        jg = jvp(self.g64, wrt=self.ws)
        zeros = {f"tangent_{w}": np.zeros_like(self.args[w]) for w in self.ws}
        for w in self.ws:
            plus, minus, taken = _shifted(self.args, {w: self.rng.standard_normal(self.args[w].shape)}, self.eps)
            tangents = evaluate(jg, **self.args, **{**zeros, f"tangent_{w}": taken[w]})
            p, m = self.run(plus), self.run(minus)
            for o in self.proj.W:
                self.record(tangents[f"tangent_{o}"], (p[o] - m[o]) / (2 * self.eps), "forward", "gc.jvp", w,
                            output=o)

    def second_order(self, modes):
        """Hessian-vector products of phi along one random direction v: reverse over reverse
        ("rev") and forward over reverse ("fwd"), against differences of the gradient along v."""
        ws, eps = self.ws, self.eps
        loss = self.g64.copy()
        self.proj.add_loss(loss, "loss")
        g1 = grad(loss, of="loss", wrt=ws)
        add_gv(g1, {w: g1.outputs[f"grad_{w}"] for w in ws})
        plus, minus, v = _shifted(self.args, {w: self.rng.standard_normal(self.args[w].shape) for w in ws}, eps)
        hv = {f"hv_{w}": v[w] for w in ws}
        p, m = evaluate(g1, **plus, **hv), evaluate(g1, **minus, **hv)
        numeric = {w: (p[f"grad_{w}"] - m[f"grad_{w}"]) / (2 * eps) for w in ws}
        if "rev" in modes:
            rr = evaluate(grad(g1, of="gv", wrt=ws, names={w: f"hvp_{w}" for w in ws}), **self.args, **hv)
            for w in ws:
                self.record(rr[f"hvp_{w}"], numeric[w], "second order", "reverse over reverse", w)
        if "fwd" in modes:
            fr = evaluate(jvp(g1, wrt=ws), **self.args, **hv, **{f"tangent_{w}": v[w] for w in ws})
            for w in ws:
                self.record(fr[f"tangent_grad_{w}"], numeric[w], "second order", "forward over reverse", w)
