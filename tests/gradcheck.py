"""Gradient checking for graphc graphs: analytic derivatives against central finite differences.

    from gradcheck import check_all

    def build(g, x, y):                     # x, y: the graph values of the arrays below
        return gc.tanh(x * y)               # a Value, or {output name: Value}
    check_all(build, {"x": X, "y": Y})      # reverse (grad, vjp), forward (jvp), second order

Every array in ``args`` becomes a graph input of its dtype and shape; the float ones are what
is differentiated (``wrt``, by default). The outputs must be float64. They are projected to a
scalar with fixed random weights, ``phi = sum_k sum(W_k * o_k + V_k * o_k**2 / 2)`` (the
quadratic term makes second derivatives of linear ops non-trivial), and the analytic results
are compared with central differences computed from ``gc.evaluate`` of the *forward* graph only,
so the expected values never come from graphc's autodiff:

* ``check_grad``: ``gc.grad`` of phi (built into the graph) vs per-element central differences;
* ``check_vjp``: ``gc.vjp`` with cotangents W_k (linear projection) vs central differences;
* ``check_jvp``: ``gc.jvp`` with random tangents vs directional central differences of every
  output, element by element;
* ``check_second_order``: a Hessian-vector product two ways -- reverse over reverse (grad of
  ``sum(grad_x * v)``) and forward over reverse (``jvp`` of the gradient graph) -- vs central
  differences of the first gradient along ``v``.

Weights and tangents are multiples of 1/8, and the default step is a power of two (2**-20), so
that a test that needs exact arithmetic (casts through float32) can have it. Differences of
outputs are taken before they are weighted, so outputs a step does not touch cancel exactly.
Central differences in float64 with a step ~1e-6 are accurate to ~1e-10 for smooth functions of
O(1) values, well inside the default ``rtol=1e-6``, ``atol=1e-8``.

The projection, the per-element differences and the Hessian-vector graph are the ones the public
``gc.check_grads`` uses (``graphc/check.py``); this harness adds what the project's own tests
need beyond it: builders, exact steps in the arguments' own dtypes, dtype checks of the
gradients and ``np.testing`` failures.
"""

import os

import numpy as np

import graphc as gc
from graphc.check import EPS, Projection, add_gv, numeric_gradient, quantized

RTOL = 1e-6
ATOL = 1e-8
# GRADCHECK_SCALE=10 runs ten times the hypothesis examples everywhere (a deeper bug hunt)
EXAMPLES_SCALE = float(os.environ.get("GRADCHECK_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled by $GRADCHECK_SCALE."""
    return max(1, round(n * EXAMPLES_SCALE))


# ---------------------------------------------------------------- small helpers


def float_names(args) -> list[str]:
    return [n for n, a in args.items() if np.asarray(a).dtype.kind == "f"]


def assert_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite analytic values {actual}"
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol, atol=atol, err_msg=what)


def max_value_size(graph) -> int:
    """The largest number of elements of any value in ``graph``."""
    return max((v.size for v in graph.nodes), default=0)


# ---------------------------------------------------------------- building the graphs


class Problem:
    """One function to check: the forward graph, its arguments and the fixed projection."""

    def __init__(self, build, args, wrt=None, *, seed=0, eps=EPS, rtol=RTOL, atol=ATOL, op=None, name="f"):
        self.build, self.args, self.eps, self.rtol, self.atol = build, dict(args), eps, rtol, atol
        self.wrt = float_names(self.args) if wrt is None else list(wrt)
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.graph = self.forward()
        if op is not None:
            ops = {v.op for v in self.graph.nodes}
            assert op in ops, f"the graph built to check {op!r} has no {op!r} node (ops: {sorted(ops)})"
        self.projection = Projection({k: v.shape for k, v in self.graph.outputs.items()}, self.rng, quantized)
        self.W, self.V = self.projection.W, self.projection.V
        self.delta_linear, self.delta_loss = self.projection.delta_linear, self.projection.delta_loss

    def forward(self, with_loss=False) -> gc.Graph:
        g = gc.Graph(self.name)
        values = {n: g.input(n, np.shape(a), np.asarray(a).dtype.name) for n, a in self.args.items()}
        out = self.build(g, **values)
        outs = out if isinstance(out, dict) else {"out": out}
        for k, v in outs.items():
            assert v.dtype == "float64", f"output {k!r} is {v.dtype}: gradcheck builders must return float64"
            g.output(k, v)
        if with_loss:
            self.projection.add_loss(g, "loss")
        return g

    # ------------------------------------------------------------ evaluation

    def outputs(self, args) -> dict:
        return gc.evaluate(self.graph, **args)

    def numeric_gradient(self, delta) -> dict:
        """Per-element central differences of the projection ``delta`` describes."""
        return {w: numeric_gradient(self.outputs, self.args, w, self.eps, delta) for w in self.wrt}

    def shifted(self, direction, sign) -> dict:
        """The arguments moved by ``sign * eps * direction`` along the wrt arguments (exactly)."""
        moved = dict(self.args)
        for w, d in direction.items():
            x = np.asarray(self.args[w])
            moved[w] = (x + sign * self.eps * d).astype(x.dtype)
            assert np.array_equal(moved[w].astype(np.float64) - x, sign * self.eps * d), \
                f"step along {w!r} is not exact in {x.dtype}"
        return moved

    def random_direction(self) -> dict:
        return {w: quantized(self.rng, np.shape(self.args[w])) for w in self.wrt}


# ---------------------------------------------------------------- the checks


def _verified(graph):
    gc.verify(graph)
    return graph


def check_grad(p: Problem):
    """``gc.grad`` of the projected loss vs per-element central differences."""
    dg = _verified(gc.grad(p.forward(with_loss=True), of="loss", wrt=p.wrt))
    out = gc.evaluate(dg, **p.args)
    expected = p.numeric_gradient(p.delta_loss)
    for w in p.wrt:
        assert out[f"grad_{w}"].dtype == np.asarray(p.args[w]).dtype
        assert_close(out[f"grad_{w}"], expected[w], f"grad d loss / d {w}", p.rtol, p.atol)
    return dg


def check_vjp(p: Problem):
    """``gc.vjp`` with cotangents W (one per output) vs central differences of sum(W * out)."""
    dg = _verified(gc.vjp(p.graph, wrt=p.wrt))
    cot = {f"cotangent_{k}": p.W[k] for k in p.graph.outputs}
    out = gc.evaluate(dg, **p.args, **cot)
    expected = p.numeric_gradient(p.delta_linear)
    for w in p.wrt:
        assert_close(out[f"grad_{w}"], expected[w], f"vjp grad_{w}", p.rtol, p.atol)
    return dg


def check_jvp(p: Problem):
    """``gc.jvp`` with random tangents vs directional central differences of every output."""
    dg = _verified(gc.jvp(p.graph, wrt=p.wrt))
    t = p.random_direction()
    out = gc.evaluate(dg, **p.args, **{f"tangent_{w}": np.asarray(t[w], np.asarray(p.args[w]).dtype) for w in p.wrt})
    plus, minus = p.outputs(p.shifted(t, +1)), p.outputs(p.shifted(t, -1))
    for k in p.graph.outputs:
        expected = (plus[k] - minus[k]) / (2 * p.eps)
        assert_close(out[f"tangent_{k}"], expected, f"jvp tangent_{k}", p.rtol, p.atol)
    return dg


def gradient_graph_with_gv(p: Problem, v_prefix="hv_"):
    """g1 = grad of the loss, extended with inputs ``hv_<w>`` and output ``gv = sum_w grad_w . hv_w``."""
    g1 = gc.grad(p.forward(with_loss=True), of="loss", wrt=p.wrt)
    add_gv(g1, {w: g1.outputs[f"grad_{w}"] for w in p.wrt}, v_prefix)
    return g1


def check_second_order(p: Problem):
    """Hessian-vector products (reverse-over-reverse and forward-over-reverse) vs central
    differences of the first gradient along v."""
    g1 = gradient_graph_with_gv(p)
    v = p.random_direction()
    vargs = {f"hv_{w}": np.asarray(v[w], np.asarray(p.args[w]).dtype) for w in p.wrt}
    g2 = _verified(gc.grad(g1, of="gv", wrt=p.wrt, names={w: f"hvp_{w}" for w in p.wrt}))
    fwd = _verified(gc.jvp(g1, wrt=p.wrt))
    plus = gc.evaluate(g1, **p.shifted(v, +1), **vargs)
    minus = gc.evaluate(g1, **p.shifted(v, -1), **vargs)
    rr = gc.evaluate(g2, **p.args, **vargs)
    fr = gc.evaluate(fwd, **p.args, **vargs, **{f"tangent_{w}": vargs[f"hv_{w}"] for w in p.wrt})
    for w in p.wrt:
        expected = (plus[f"grad_{w}"].astype(np.float64) - minus[f"grad_{w}"]) / (2 * p.eps)
        assert_close(rr[f"hvp_{w}"], expected, f"reverse-over-reverse H v for {w}", p.rtol, p.atol)
        assert_close(fr[f"tangent_grad_{w}"], expected, f"forward-over-reverse H v for {w}", p.rtol, p.atol)
    return g2


def check_all(build, args, wrt=None, **kw) -> Problem:
    """grad, vjp, jvp and second order of ``build`` at ``args``; returns the Problem."""
    p = Problem(build, args, wrt, **kw)
    check_grad(p)
    check_vjp(p)
    check_jvp(p)
    check_second_order(p)
    return p
