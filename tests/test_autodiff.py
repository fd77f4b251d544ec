"""Autodiff on whole programs: the seed examples with exact values, the two-layer net against
hand-written numpy backprop, losses against their textbook gradients, second order (Hessian-
vector products, gradient penalties), forward/reverse agreement, the no-Jacobian guarantee, and
the behaviour of the grad/vjp/jvp API. Expected values come from numpy, hand derivations or
finite differences, never from graphc's autodiff itself.
"""

import numpy as np
import pytest
from hypothesis import assume, given, note, reject, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.examples import two_layer as two_layer_graph
from gradcheck import Problem, check_all, check_grad, check_jvp, check_vjp, examples, max_value_size
from strategies import assert_same_outputs, graphs, random_arguments


@st.composite
def random_graphs(draw, **kw):
    try:
        return draw(graphs(**kw))
    except gc.GraphcError:  # a fault of the graph strategy (it should only build valid graphs): skip
        reject()


def scalar_graph(name, *names, dtype="float64"):
    g = gc.Graph(name)
    return g, [g.input(n, (), dtype) for n in names]


def matmul_count(graph) -> int:
    return sum(v.op == "matmul" for v in graph.nodes)


def softmax_np(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ================================================================ seed examples


def test_circuit_add_then_multiply():
    g, (x, y, z) = scalar_graph("circuit", "x", "y", "z")
    g.output("f", (x + y) * z)
    dg = gc.grad(g, wrt=["x", "y", "z"])
    out = gc.evaluate(dg, x=-2.0, y=5.0, z=-4.0)
    assert out["f"] == -12.0
    # q = x + y = 3; df/dq = z = -4 flows unchanged into x and y; df/dz = q = 3
    assert out["grad_x"] == -4.0
    assert out["grad_y"] == -4.0
    assert out["grad_z"] == 3.0


@pytest.mark.parametrize("form", ["sigmoid", "explicit"])
def test_sigmoid_neuron(form):
    g = gc.Graph("neuron")
    w = g.param("w", (3,), "float64")
    x = g.input("x", (2,), "float64")
    dot = w[0] * x[0] + w[1] * x[1] + w[2]
    f = gc.sigmoid(dot) if form == "sigmoid" else 1.0 / (1.0 + gc.exp(-dot))
    g.output("f", f)
    dg = gc.grad(g, wrt=["w", "x"])
    W, X = np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])
    out = gc.evaluate(dg, w=W, x=X)
    # the textbook values (2 decimals)
    assert round(float(out["f"]), 2) == 0.73
    assert np.round(out["grad_w"], 2).tolist() == [-0.20, -0.39, 0.20]
    assert np.round(out["grad_x"], 2).tolist() == [0.39, -0.59]
    # and exactly by hand: dot = 1, f = s(1), ddot = f (1 - f)
    s = 1 / (1 + np.exp(-1.0))
    d = s * (1 - s)
    np.testing.assert_allclose(out["f"], s, rtol=1e-15)
    np.testing.assert_allclose(out["grad_w"], [X[0] * d, X[1] * d, d], rtol=1e-14)
    np.testing.assert_allclose(out["grad_x"], [W[0] * d, W[1] * d], rtol=1e-14)


def _vjp_eval(build, args, cot):
    g = gc.Graph("gate")
    vals = {n: g.input(n, a.shape, a.dtype.name) for n, a in args.items()}
    g.output("out", build(**vals))
    vg = gc.vjp(g, wrt=list(args))
    return gc.evaluate(vg, **args, cotangent_out=cot)


U = np.array([0.5, -1.5, 2.0, 3.25])
A = np.array([1.0, 5.0, 2.0, 3.0])
B = np.array([4.0, 2.0, 2.0, -1.0])  # A and B tie at index 2


def test_add_gate_distributes():
    out = _vjp_eval(lambda a, b: a + b, {"a": A, "b": B}, U)
    np.testing.assert_array_equal(out["grad_a"], U, strict=True)
    np.testing.assert_array_equal(out["grad_b"], U, strict=True)


def test_mul_gate_swaps():
    out = _vjp_eval(lambda a, b: a * b, {"a": A, "b": B}, U)
    np.testing.assert_array_equal(out["grad_a"], U * B, strict=True)
    np.testing.assert_array_equal(out["grad_b"], U * A, strict=True)


def test_sub_and_div_gates():
    out = _vjp_eval(lambda a, b: a - b, {"a": A, "b": B}, U)
    np.testing.assert_array_equal(out["grad_a"], U)
    np.testing.assert_array_equal(out["grad_b"], -U)
    out = _vjp_eval(lambda a, b: a / b, {"a": A, "b": B}, U)
    np.testing.assert_allclose(out["grad_a"], U / B, rtol=1e-15)
    np.testing.assert_allclose(out["grad_b"], -U * A / B**2, rtol=1e-15)


def test_maximum_gate_routes_and_ties_go_to_the_first_operand():
    out = _vjp_eval(gc.maximum, {"a": A, "b": B}, U)
    np.testing.assert_array_equal(out["grad_a"], U * [0, 1, 1, 1])
    np.testing.assert_array_equal(out["grad_b"], U * [1, 0, 0, 0])
    out = _vjp_eval(lambda a, b: gc.maximum(b, a), {"a": A, "b": B}, U)
    np.testing.assert_array_equal(out["grad_a"], U * [0, 1, 0, 1])
    np.testing.assert_array_equal(out["grad_b"], U * [1, 0, 1, 0])
    out = _vjp_eval(gc.minimum, {"a": A, "b": B}, U)
    np.testing.assert_array_equal(out["grad_a"], U * [1, 0, 1, 0])
    np.testing.assert_array_equal(out["grad_b"], U * [0, 1, 0, 1])


def test_maximum_gate_forward_mode_follows_the_same_convention():
    g = gc.Graph("gate")
    a, b = g.input("a", (4,), "float64"), g.input("b", (4,), "float64")
    g.output("mx", gc.maximum(a, b))
    g.output("mn", gc.minimum(a, b))
    jg = gc.jvp(g, wrt=["a", "b"])
    ta, tb = np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])
    out = gc.evaluate(jg, a=A, b=B, tangent_a=ta, tangent_b=tb)
    np.testing.assert_array_equal(out["tangent_mx"], [10.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(out["tangent_mn"], [1.0, 20.0, 3.0, 40.0])


def test_max_reduction_routes_to_the_maximum_and_ties_share_equally():
    x = np.array([[1.0, 7.0, 3.0], [4.0, 4.0, 2.0], [5.0, 5.0, 5.0]])
    u = np.array([2.0, 3.0, 6.0])
    out = _vjp_eval(lambda x: gc.max(x, axis=1), {"x": x}, u)
    np.testing.assert_array_equal(out["grad_x"], [[0, 2, 0], [1.5, 1.5, 0], [2, 2, 2]])
    out = _vjp_eval(lambda x: gc.min(x, axis=1), {"x": x}, u)
    np.testing.assert_array_equal(out["grad_x"], [[2, 0, 0], [0, 0, 3], [2, 2, 2]])
    out = _vjp_eval(lambda x: gc.max(x), {"x": x}, np.array(4.0))
    np.testing.assert_array_equal(out["grad_x"], [[0, 4, 0], [0, 0, 0], [0, 0, 0]])
    out = _vjp_eval(lambda x: gc.max(x, axis=0, keepdims=True), {"x": x}, np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(out["grad_x"], [[0, 2, 0], [0, 0, 0], [1, 0, 3]])
    # forward mode: the tangent of a max is the mean of the tied elements' tangents
    g = gc.Graph("mx")
    xv = g.input("x", (3, 3), "float64")
    g.output("m", gc.max(xv, axis=1))
    t = np.arange(9.0).reshape(3, 3)
    out = gc.evaluate(gc.jvp(g, wrt=["x"]), x=x, tangent_x=t)
    np.testing.assert_array_equal(out["tangent_m"], [1.0, 3.5, 7.0])


def test_kink_conventions_relu_and_abs():
    x = np.array([-1.0, 0.0, 2.0, -0.0])
    u = np.array([1.0, 1.0, 1.0, 1.0])
    out = _vjp_eval(gc.relu, {"x": x}, u)
    np.testing.assert_array_equal(out["grad_x"], [0.0, 0.0, 1.0, 0.0])
    out = _vjp_eval(gc.abs, {"x": x}, u)
    np.testing.assert_array_equal(out["grad_x"], [-1.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("xs", [np.array([-1.5, 0.0, 0.3, 2.0]), np.linspace(-3, 3, 7)])
def test_fan_out_adds(xs):
    g = gc.Graph("fanout")
    x = g.input("x", xs.shape, "float64")
    g.output("plus", gc.sum(gc.exp(x) + x**2))
    g.output("times", gc.sum(gc.exp(x) * x**2))
    g.output("cube", gc.sum(x * x * x))
    for of, expected in [("plus", np.exp(xs) + 2 * xs),
                         ("times", xs**2 * np.exp(xs) + 2 * xs * np.exp(xs)),
                         ("cube", 3 * xs**2)]:
        out = gc.evaluate(gc.grad(g, of=of, wrt=["x"]), x=xs)
        np.testing.assert_allclose(out["grad_x"], expected, rtol=1e-14, atol=1e-15, err_msg=of)


# ================================================================ the two-layer net


@pytest.fixture(scope="module")
def two_layer():
    rng = np.random.default_rng(0)
    N, D_in, H, D_out = 64, 1000, 100, 10
    data = dict(x=rng.standard_normal((N, D_in)), y=rng.standard_normal((N, D_out)),
                w1=rng.standard_normal((D_in, H)) * 0.03, w2=rng.standard_normal((H, D_out)))
    return two_layer_graph(dtype="float64"), data


def numpy_two_layer_backprop(x, y, w1, w2):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return loss, grad_w1, grad_w2


def assert_rel(actual, expected, rel, what):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * scale, err_msg=what)
    assert np.linalg.norm(actual - expected) <= rel * np.linalg.norm(expected), what


def test_two_layer_gradients_match_numpy_backprop(two_layer):
    g, d = two_layer
    dg = gc.grad(g)  # of: the only output; wrt: all params
    assert set(dg.outputs) == {"loss", "grad_w1", "grad_w2"}
    out = gc.evaluate(dg, **d)
    loss, gw1, gw2 = numpy_two_layer_backprop(**d)
    assert_rel(out["loss"], loss, 1e-12, "loss")
    assert_rel(out["grad_w1"], gw1, 1e-9, "grad_w1")
    assert_rel(out["grad_w2"], gw2, 1e-9, "grad_w2")


def test_two_layer_gradient_graph_has_five_matmuls(two_layer):
    g, _ = two_layer
    assert matmul_count(g) == 2
    dg = gc.grad(g, of="loss", wrt=["w1", "w2"])
    # 2 forward + h.T @ gy (w2) + gy @ w2.T (propagated to h) + x.T @ (...) (w1)
    assert matmul_count(dg) == 5
    # only w2's gradient: no propagation into the first layer, one matmul more than forward
    assert matmul_count(gc.grad(g, of="loss", wrt=["w2"])) == 3


def test_two_layer_derived_graphs_build_no_jacobian(two_layer):
    g, _ = two_layer
    limit = max_value_size(g)
    assert limit == 1000 * 100
    for dg in (gc.grad(g), gc.vjp(g), gc.jvp(g), gc.grad(g, wrt=["x", "w1"])):
        assert max_value_size(dg) <= limit, dg.name


# ================================================================ losses


def test_svm_loss_with_l2_matches_the_numpy_gradient():
    rng = np.random.default_rng(1)
    N, D, C, lam = 16, 7, 5, 0.1
    X, W = rng.standard_normal((N, D)), rng.standard_normal((D, C)) * 0.5
    labels = rng.integers(0, C, N)
    g = gc.Graph("svm")
    x, w, y = g.input("x", (N, D), "float64"), g.param("W", (D, C), "float64"), g.input("y", (N,), "int64")
    g.output("loss", gc.svm_loss(x @ w, y) + gc.l2_regularization(w, lam))
    out = gc.evaluate(gc.grad(g), x=X, W=W, y=labels)

    # cs231n svm_loss_vectorized
    scores = X.dot(W)
    correct = scores[np.arange(N), labels][:, None]
    margins = np.maximum(0, scores - correct + 1.0)
    margins[np.arange(N), labels] = 0
    assert np.all(np.abs(scores - correct + 1.0) > 1e-6)  # away from the hinge's kink
    loss = margins.sum() / N + lam * np.sum(W * W)
    binary = (margins > 0).astype(float)
    binary[np.arange(N), labels] = -binary.sum(axis=1)
    dW = X.T.dot(binary) / N + 2 * lam * W

    np.testing.assert_allclose(out["loss"], loss, rtol=1e-13)
    np.testing.assert_allclose(out["grad_W"], dW, rtol=1e-12, atol=1e-14)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(2)
    N, C = 12, 6
    Z = rng.standard_normal((N, C)) * 3
    labels = rng.integers(0, C, N)
    g = gc.Graph("ce")
    z, y = g.input("z", (N, C), "float64"), g.input("y", (N,), "int64")
    g.output("loss", gc.cross_entropy(z, y))
    out = gc.evaluate(gc.grad(g, wrt=["z"]), z=Z, y=labels)
    p = softmax_np(Z)
    onehot = np.eye(C)[labels]
    np.testing.assert_allclose(out["loss"], -np.mean(np.log(p[np.arange(N), labels])), rtol=1e-13)
    np.testing.assert_allclose(out["grad_z"], (p - onehot) / N, rtol=1e-12, atol=1e-16)


COMPOSITES = {
    "softmax": lambda g, x: gc.softmax(x, axis=-1),
    "softmax_axis0": lambda g, x: gc.softmax(x, axis=0),
    "log_softmax": lambda g, x: gc.log_softmax(x),
    "logsumexp": lambda g, x: gc.logsumexp(x, axis=1, keepdims=True),
    "layer_norm": lambda g, x: gc.layer_norm(x, gc.exp(x[0]), x[1] * 2.0),
    "gelu_tanh": lambda g, x: gc.gelu(x),
    "gelu_erf": lambda g, x: gc.gelu(x, approximate=False),
    "mse": lambda g, x: gc.mse(x[:2], x[1:]),
    "mean": lambda g, x: gc.mean(x, axis=0) + gc.mean(x),
    "linear": lambda g, x: gc.linear(x[:, :2], x[1:3, :], x[0]),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composites_match_finite_differences(name):
    x = np.random.default_rng(3).uniform(-2, 2, (3, 4))
    check_all(COMPOSITES[name], {"x": x}, name=name)


# ================================================================ second order


def test_hessian_vector_product_of_tanh_squared():
    rng = np.random.default_rng(4)
    m, n = 5, 4
    Wv, xv, vv = rng.standard_normal((m, n)), rng.standard_normal(n), rng.standard_normal(n)
    g = gc.Graph("tanh_sq")
    W, x = g.param("W", (m, n), "float64"), g.input("x", (n,), "float64")
    g.output("f", gc.sum(gc.tanh(W @ x) ** 2))
    g1 = gc.grad(g, wrt=["x"])
    v = g1.input("v", (n,), "float64")
    g1.output("gv", gc.sum(g1.outputs["grad_x"] * v))
    g2 = gc.grad(g1, of="gv", wrt=["x"], names={"x": "hvp"})
    gc.verify(g2)
    hvp = gc.evaluate(g2, W=Wv, x=xv, v=vv)["hvp"]

    # by hand: f = sum(t^2), t = tanh(W x): H = W^T diag(2 (1 - t^2)(1 - 3 t^2)) W
    t = np.tanh(Wv @ xv)
    H = Wv.T @ np.diag(2 * (1 - t**2) * (1 - 3 * t**2)) @ Wv
    np.testing.assert_allclose(hvp, H @ vv, rtol=1e-12, atol=1e-14)
    grad = Wv.T @ (2 * t * (1 - t**2))
    np.testing.assert_allclose(gc.evaluate(g1, W=Wv, x=xv, v=vv)["grad_x"], grad, rtol=1e-13)
    # and by central differences of the first gradient along v
    eps = 1e-6
    gp = gc.evaluate(g1, W=Wv, x=xv + eps * vv, v=vv)["grad_x"]
    gm = gc.evaluate(g1, W=Wv, x=xv - eps * vv, v=vv)["grad_x"]
    np.testing.assert_allclose(hvp, (gp - gm) / (2 * eps), rtol=1e-6, atol=1e-8)
    # forward over reverse gives the same product
    fr = gc.evaluate(gc.jvp(g1, wrt=["x"]), W=Wv, x=xv, v=vv, tangent_x=vv)["tangent_grad_x"]
    np.testing.assert_allclose(fr, H @ vv, rtol=1e-12, atol=1e-14)


def test_third_order_derivative_of_a_scalar_function():
    g, (x,) = scalar_graph("cubic", "x")
    g.output("f", gc.sin(x) * x**3)
    d1 = gc.grad(g, names={"x": "d1"}, wrt=["x"])
    d2 = gc.grad(d1, of="d1", wrt=["x"], names={"x": "d2"})
    d3 = gc.grad(d2, of="d2", wrt=["x"], names={"x": "d3"})
    X = 0.7
    out = gc.evaluate(d3, x=X)
    s, c = np.sin(X), np.cos(X)
    np.testing.assert_allclose(out["d1"], c * X**3 + 3 * X**2 * s, rtol=1e-14)
    np.testing.assert_allclose(out["d2"], -s * X**3 + 6 * X**2 * c + 6 * X * s, rtol=1e-14)
    np.testing.assert_allclose(out["d3"], -c * X**3 - 9 * X**2 * s + 18 * X * c + 6 * s, rtol=1e-13)


def test_gradient_penalty_differentiated_by_the_weights():
    rng = np.random.default_rng(5)
    N, D, H = 4, 3, 5
    Xv, W1v, w2v = rng.standard_normal((N, D)), rng.standard_normal((D, H)), rng.standard_normal(H)
    g = gc.Graph("penalty")
    x, W1, w2 = g.input("x", (N, D), "float64"), g.param("W1", (D, H), "float64"), g.param("w2", (H,), "float64")
    g.output("loss", gc.sum(gc.tanh(x @ W1) @ w2))
    g1 = gc.grad(g, wrt=["x"])
    g1.output("penalty", gc.sum(gc.square(g1.outputs["grad_x"])))
    g2 = gc.grad(g1, of="penalty", wrt=["W1", "w2"])
    gc.verify(g2)
    out = gc.evaluate(g2, x=Xv, W1=W1v, w2=w2v)

    def penalty(W1, w2):  # numpy: dL/dx = ((1 - t^2) * w2) @ W1^T
        t = np.tanh(Xv @ W1)
        return np.sum(((1 - t**2) * w2 @ W1.T) ** 2)

    np.testing.assert_allclose(out["penalty"], penalty(W1v, w2v), rtol=1e-13)
    eps = 1e-6
    for name, arr in (("W1", W1v), ("w2", w2v)):
        fd = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            p, m = arr.copy(), arr.copy()
            p[idx] += eps
            m[idx] -= eps
            args_p = {"W1": p, "w2": w2v} if name == "W1" else {"W1": W1v, "w2": p}
            args_m = {"W1": m, "w2": w2v} if name == "W1" else {"W1": W1v, "w2": m}
            fd[idx] = (penalty(**args_p) - penalty(**args_m)) / (2 * eps)
        np.testing.assert_allclose(out[f"grad_{name}"], fd, rtol=1e-6, atol=1e-8, err_msg=name)


# ================================================================ forward vs reverse


def _duality(g, seed):
    """u . (J t) and (J^T u) . t for random t, u; with a tolerance scale."""
    wrt = [n for n, v in g.arguments.items() if v.dtype.startswith("float")]
    outs = [k for k, v in g.outputs.items() if v.dtype.startswith("float")]
    rng = np.random.default_rng(seed)
    args = random_arguments(g, seed)
    t = {w: rng.standard_normal(g.arguments[w].shape).astype(g.arguments[w].dtype) for w in wrt}
    u = {k: rng.standard_normal(g.outputs[k].shape).astype(g.outputs[k].dtype) for k in outs}
    jg, vg = gc.jvp(g, wrt=wrt), gc.vjp(g, wrt=wrt)
    gc.verify(jg)
    gc.verify(vg)
    jt = gc.evaluate(jg, **args, **{f"tangent_{w}": t[w] for w in wrt})
    jtu = gc.evaluate(vg, **args, **{f"cotangent_{k}": u[k] for k in outs})
    lhs_terms = [np.asarray(u[k], np.float64) * jt[f"tangent_{k}"] for k in outs]
    rhs_terms = [np.asarray(jtu[f"grad_{w}"], np.float64) * t[w] for w in wrt]
    lhs = sum(float(np.sum(x)) for x in lhs_terms)
    rhs = sum(float(np.sum(x)) for x in rhs_terms)
    # rounding scales with the terms summed, plus a little with |u| |t| (a cancellation inside
    # one mode can leave ~1e-16 where the other gives an exact 0)
    scale = sum(float(np.sum(np.abs(x))) for x in lhs_terms + rhs_terms)
    scale += 1e-3 * np.sqrt(sum(float(np.sum(np.square(x, dtype=np.float64))) for x in u.values())
                            * sum(float(np.sum(np.square(x, dtype=np.float64))) for x in t.values()))
    return lhs, rhs, scale


def _all_values_finite(g, args) -> bool:
    probe = g.copy()
    for v in probe.nodes:
        probe.output(f"v{v.id}", v)
    return all(np.all(np.isfinite(a)) for a in gc.evaluate(probe, **args).values() if a.dtype.kind == "f")


@settings(max_examples=examples(40))
@given(g=random_graphs(dtypes=("float64", "int64"), nonfinite_consts=False, min_outputs=2, max_ops=10),
       seed=st.integers(0, 2**16))
def test_jvp_and_vjp_agree_on_random_graphs(g, seed):
    note(gc.to_text(g))
    wrt = [n for n, v in g.arguments.items() if v.dtype.startswith("float")]
    assume(wrt and any(v.dtype.startswith("float") for v in g.outputs.values()))
    assume(_all_values_finite(g, random_arguments(g, seed)))
    lhs, rhs, scale = _duality(g, seed)
    assume(np.isfinite(scale))
    f32 = any(v.dtype == "float32" for v in g.nodes)
    tol = 1e-5 if f32 else 1e-12
    assert abs(lhs - rhs) <= tol * scale, (lhs, rhs, scale)


def _multi_output_graphs():
    def mlp_heads():
        g = gc.Graph("heads")
        x, W1, b1 = g.input("x", (4, 3), "float64"), g.param("W1", (3, 5), "float64"), g.param("b1", (5,), "float64")
        W2 = g.param("W2", (5, 2), "float64")
        h = gc.tanh(x @ W1 + b1)
        g.output("probs", gc.softmax(h @ W2))
        g.output("energy", gc.sum(h * h, axis=1))
        g.output("window", h[::-1, 1:4:2])
        g.output("lse", gc.logsumexp(h @ W2, axis=0))
        return g

    def shared():
        g = gc.Graph("shared")
        a, b = g.input("a", (2, 3), "float64"), g.param("b", (3,), "float64")
        s = gc.sigmoid(a * b)
        g.output("s", s)
        g.output("again", s)  # one value under two names
        g.output("mix", gc.concat([s, gc.exp(a) / (1 + b * b)], axis=0).T @ gc.pad(s, [1, 0], [1, 1]))
        g.output("picked", gc.take_along_axis(s, g.const(np.array([[2, 0], [1, 1]])), axis=1))
        return g

    def norm():
        g = gc.Graph("norm")
        x, gamma = g.input("x", (3, 4), "float64"), g.param("gamma", (4,), "float64")
        y = gc.layer_norm(x, gamma, None)
        g.output("y", gc.gelu(y))
        g.output("stats", gc.max(y, axis=0) - gc.min(y, axis=1, keepdims=True))
        g.output("scattered", gc.scatter_add(y, g.const(np.array([[0, 1, 0, 1]] * 3)), 1, 2))
        return g

    return {"mlp_heads": mlp_heads, "shared": shared, "norm": norm}


@pytest.mark.parametrize("name", sorted(_multi_output_graphs()))
def test_jvp_and_vjp_agree_on_multi_output_graphs(name):
    g = _multi_output_graphs()[name]()
    for seed in range(3):
        lhs, rhs, scale = _duality(g, seed)
        assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs)


@pytest.mark.parametrize("name", sorted(_multi_output_graphs()))
def test_multi_output_graphs_match_finite_differences(name):
    g = _multi_output_graphs()[name]()
    rng = np.random.default_rng(7)
    args = {n: rng.uniform(-1.5, 1.5, v.shape) for n, v in g.arguments.items()}

    def build(gg, **vals):
        env = {}
        for v in g.nodes:  # replay g into gg on the harness's inputs
            env[v.id] = vals[v.name] if v.name in vals else gg.add_node(v.op, [env[i.id] for i in v.inputs], v.attrs)
        return {k: env[v.id] for k, v in g.outputs.items()}

    p = Problem(build, args, name=name)
    check_vjp(p)
    check_jvp(p)


# ================================================================ no Jacobians


def _mlp_cross_entropy():
    g = gc.Graph("mlp")
    x, y = g.input("x", (32, 20), "float64"), g.input("y", (32,), "int64")
    W1, b1 = g.param("W1", (20, 16), "float64"), g.param("b1", (16,), "float64")
    W2, b2 = g.param("W2", (16, 5), "float64"), g.param("b2", (5,), "float64")
    h = gc.relu(x @ W1 + b1)
    g.output("loss", gc.cross_entropy(h @ W2 + b2, y) + gc.l2_regularization(W1, 1e-3))
    return g


def test_mlp_cross_entropy_builds_no_jacobian_and_matches_finite_differences():
    g = _mlp_cross_entropy()
    limit = max_value_size(g)
    for dg in (gc.grad(g), gc.vjp(g), gc.jvp(g), gc.grad(g, wrt=["x", "W1"])):
        assert max_value_size(dg) <= limit, dg.name
    rng = np.random.default_rng(8)
    args = {"x": rng.standard_normal((32, 20)), "y": rng.integers(0, 5, 32),
            "W1": rng.standard_normal((20, 16)) * 0.3, "b1": rng.standard_normal(16) * 0.1,
            "W2": rng.standard_normal((16, 5)) * 0.3, "b2": rng.standard_normal(5) * 0.1}
    build = lambda gg, x, y, W1, b1, W2, b2: gc.cross_entropy(gc.relu(x @ W1 + b1) @ W2 + b2, y)  # noqa: E731
    p = Problem(build, args, wrt=["W2", "b2", "b1"], name="mlp")
    check_grad(p)
    # the full W1 gradient against numpy backprop (FD over 320 entries is slow)
    out = gc.evaluate(gc.grad(g, wrt=["W1"]), **args)
    z1 = args["x"] @ args["W1"] + args["b1"]
    h = np.maximum(z1, 0)
    p_ = softmax_np(h @ args["W2"] + args["b2"])
    dlogits = (p_ - np.eye(5)[args["y"]]) / 32
    dW1 = args["x"].T @ ((dlogits @ args["W2"].T) * (z1 > 0)) + 2e-3 * args["W1"]
    np.testing.assert_allclose(out["grad_W1"], dW1, rtol=1e-10, atol=1e-14)


@settings(max_examples=examples(30))
@given(g=random_graphs(dtypes=("float32", "float64", "int64"), max_ops=10))
def test_random_derived_graphs_build_no_jacobian(g):
    wrt = [n for n, v in g.arguments.items() if v.dtype.startswith("float")]
    assume(wrt)
    limit = max_value_size(g)
    for dg in (gc.vjp(g, wrt=wrt), gc.jvp(g, wrt=wrt)):
        assert max_value_size(dg) <= limit, gc.to_text(dg)


# ================================================================ API behaviour


def _net():
    g = gc.Graph("net")
    x = g.input("x", (3, 4), "float64")
    w = g.param("w", (4, 2), "float64")
    b = g.param("b", (2,), "float64")
    g.output("loss", gc.sum(gc.tanh(x @ w + b)))
    return g


def test_of_defaults_to_the_only_output():
    g = _net()
    assert set(gc.grad(g).outputs) == {"loss", "grad_w", "grad_b"}
    g.output("other", gc.sum(g.params["w"]))
    with pytest.raises(gc.GraphError, match="of="):
        gc.grad(g)
    assert "grad_w" in gc.grad(g, of="other").outputs


def test_of_must_be_a_scalar():
    g = _net()
    g.output("vec", g.params["b"] * 2.0)
    with pytest.raises(gc.ShapeError, match="vec"):
        gc.grad(g, of="vec")


def test_unknown_names_are_graph_errors_naming_them():
    g = _net()
    with pytest.raises(gc.GraphError, match="nosuch_out"):
        gc.grad(g, of="nosuch_out")
    with pytest.raises(gc.GraphError, match="nosuch_arg"):
        gc.grad(g, wrt=["w", "nosuch_arg"])
    with pytest.raises(gc.GraphError, match="nosuch_arg"):
        gc.vjp(g, wrt=["nosuch_arg"])
    with pytest.raises(gc.GraphError, match="nosuch_arg"):
        gc.jvp(g, wrt=["nosuch_arg"])


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_gradient_with_respect_to_a_non_float_input_is_a_dtype_error(dtype):
    g = gc.Graph("ints")
    k = g.input("k", (3,), dtype)
    w = g.param("w", (3,), "float64")
    g.output("loss", gc.sum(gc.cast(k, "float64") * w))
    with pytest.raises(gc.DTypeError, match="k"):
        gc.grad(g, wrt=["k"])
    with pytest.raises(gc.DTypeError, match="k"):
        gc.vjp(g, wrt=["k"])
    with pytest.raises(gc.DTypeError, match="k"):
        gc.jvp(g, wrt=["k"])
    out = gc.evaluate(gc.grad(g), k=np.array([1, 0, 1]).astype(dtype), w=np.ones(3))
    np.testing.assert_array_equal(out["grad_w"], [1.0, 0.0, 1.0])


def test_bad_wrt_and_names_arguments():
    g = _net()
    with pytest.raises(gc.GraphError, match="repeated"):
        gc.grad(g, wrt=["w", "w"])
    with pytest.raises(gc.GraphError, match="b"):
        gc.grad(g, wrt=["w"], names={"b": "db"})
    g2 = gc.Graph("ints")
    k = g2.input("k", (3,), "int64")
    g2.param("w", (3,), "float64")
    g2.output("n", gc.sum(k))
    with pytest.raises(gc.DTypeError, match="n"):
        gc.grad(g2, of="n")


def test_outputs_that_are_inputs_or_repeated():
    g = gc.Graph("pass")
    x = g.input("x", (3,), "float64")
    g.output("x", x)
    g.output("y", x * x)
    g.output("y_again", g.outputs["y"])
    X, cx, cy, cy2 = np.array([1.0, -2.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 1.0]), np.ones(3)
    out = gc.evaluate(gc.vjp(g, wrt=["x"]), x=X, cotangent_x=cx, cotangent_y=cy, cotangent_y_again=cy2)
    np.testing.assert_allclose(out["grad_x"], cx + (cy + cy2) * 2 * X, rtol=1e-15)
    t = np.array([0.25, -1.0, 2.0])
    out = gc.evaluate(gc.jvp(g, wrt=["x"]), x=X, tangent_x=t)
    np.testing.assert_array_equal(out["tangent_x"], t)
    np.testing.assert_allclose(out["tangent_y"], 2 * X * t, rtol=1e-15)
    np.testing.assert_allclose(out["tangent_y_again"], 2 * X * t, rtol=1e-15)
    gs, (s,) = scalar_graph("id", "s")
    gs.output("s", s)
    assert gc.evaluate(gc.grad(gs, wrt="s"), s=2.5)["grad_s"] == 1.0


def test_float32_gradients_keep_their_dtype():
    g = gc.Graph("f32")
    x = g.input("x", (2, 3), "float32")
    w = g.param("w", (3,), "float32")
    g.output("loss", gc.sum(gc.tanh(x * w)))
    dg = gc.grad(g, wrt=["x", "w"])
    assert dg.outputs["grad_x"].dtype == "float32" and dg.outputs["grad_w"].dtype == "float32"
    X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
    W = np.array([0.3, -0.2, 0.1], np.float32)
    out = gc.evaluate(dg, x=X, w=W)
    d = 1 - np.tanh(X.astype(np.float64) * W) ** 2
    np.testing.assert_allclose(out["grad_x"], d * W, rtol=1e-5)
    np.testing.assert_allclose(out["grad_w"], (d * X).sum(0), rtol=1e-5)


def test_names_renames_the_gradient_outputs():
    g = _net()
    dg = gc.grad(g, wrt=["w", "x"], names={"w": "dw", "x": "dx"})
    assert set(dg.outputs) == {"loss", "dw", "dx"}
    assert dg.outputs["dw"].shape == (4, 2) and dg.outputs["dx"].shape == (3, 4)


def test_output_name_clash_suggests_names():
    g = _net()
    g.output("grad_w", gc.sum(g.params["w"]))
    with pytest.raises(gc.GraphError, match="names="):
        gc.grad(g, of="loss", wrt=["w"])
    dg = gc.grad(g, of="loss", wrt=["w"], names={"w": "dw"})
    assert {"grad_w", "dw"} <= set(dg.outputs)


def test_wrt_defaults_to_all_params_and_accepts_inputs():
    g = _net()
    assert {k for k in gc.grad(g).outputs if k.startswith("grad_")} == {"grad_w", "grad_b"}
    assert {k for k in gc.vjp(g).outputs if k.startswith("grad_")} == {"grad_w", "grad_b"}
    assert set(gc.jvp(g).inputs) == {"x", "tangent_w", "tangent_b"}
    assert "grad_x" in gc.grad(g, wrt="x").outputs


def test_vjp_signature_and_values():
    g = gc.Graph("lin")
    x = g.input("x", (3,), "float64")
    A = np.arange(6.0).reshape(2, 3) - 2.5
    y = g.const(A) @ x
    g.output("y", y)
    g.output("s", gc.sum(x * x))
    g.output("flag", x > 0.0)  # not float: no cotangent
    vg = gc.vjp(g, wrt=["x"])
    assert vg.inputs["cotangent_y"].shape == (2,) and vg.inputs["cotangent_y"].dtype == "float64"
    assert vg.inputs["cotangent_s"].shape == ()
    assert "cotangent_flag" not in vg.inputs
    assert set(vg.outputs) == {"y", "s", "flag", "grad_x"}
    X, u = np.array([1.0, -2.0, 0.5]), np.array([0.25, -3.0])
    out = gc.evaluate(vg, x=X, cotangent_y=u, cotangent_s=2.0)
    np.testing.assert_allclose(out["grad_x"], A.T @ u + 2.0 * 2 * X, rtol=1e-15)


def test_jvp_signature_and_values():
    g = gc.Graph("lin")
    x = g.input("x", (3,), "float64")
    w = g.param("w", (3,), "float64")
    A = np.arange(6.0).reshape(2, 3) - 2.5
    g.output("y", g.const(A) @ (x * w))
    g.output("n", gc.argmax(x))  # not float: no tangent
    jg = gc.jvp(g, wrt=["x"])
    assert set(jg.inputs) == {"x", "tangent_x"} and set(jg.params) == {"w"}
    assert jg.inputs["tangent_x"].shape == (3,) and jg.inputs["tangent_x"].dtype == "float64"
    assert set(jg.outputs) == {"y", "n", "tangent_y"}
    X, W, t = np.array([1.0, -2.0, 0.5]), np.array([2.0, 1.0, -1.0]), np.array([0.5, 1.0, -4.0])
    out = gc.evaluate(jg, x=X, w=W, tangent_x=t)
    np.testing.assert_allclose(out["tangent_y"], A @ (t * W), rtol=1e-15)


def test_stop_gradient_blocks_the_gradient():
    g = gc.Graph("sg")
    x = g.input("x", (4,), "float64")
    g.output("f", gc.sum(gc.stop_gradient(x) * x))
    g.output("h", gc.sum(gc.stop_gradient(x * x) + gc.sign(x) * x))
    X = np.array([1.5, -2.0, 0.25, 3.0])
    np.testing.assert_array_equal(gc.evaluate(gc.grad(g, of="f", wrt="x"), x=X)["grad_x"], X)
    np.testing.assert_array_equal(gc.evaluate(gc.grad(g, of="h", wrt="x"), x=X)["grad_x"], np.sign(X))
    out = gc.evaluate(gc.jvp(g, wrt="x"), x=X, tangent_x=np.ones(4))
    assert out["tangent_f"] == X.sum()


def test_gradient_of_an_output_that_does_not_depend_on_wrt_is_zero():
    g = gc.Graph("indep")
    x, y = g.input("x", (2, 3), "float64"), g.input("y", (3,), "float64")
    g.output("f", gc.sum(gc.exp(y)))
    g.output("c", gc.sum(g.const(np.ones(3))))
    dg = gc.grad(g, of="f", wrt=["x", "y"])
    out = gc.evaluate(dg, x=np.ones((2, 3)), y=np.zeros(3))
    np.testing.assert_array_equal(out["grad_x"], np.zeros((2, 3)), strict=True)
    np.testing.assert_array_equal(out["grad_y"], np.ones(3))
    out = gc.evaluate(gc.grad(g, of="c", wrt=["x", "y"]), x=np.ones((2, 3)), y=np.zeros(3))
    np.testing.assert_array_equal(out["grad_x"], np.zeros((2, 3)), strict=True)
    np.testing.assert_array_equal(out["grad_y"], np.zeros(3), strict=True)
    out = gc.evaluate(gc.jvp(g, wrt=["x"]), x=np.ones((2, 3)), y=np.zeros(3), tangent_x=np.ones((2, 3)))
    np.testing.assert_array_equal(out["tangent_f"], 0.0)


def test_grad_does_not_modify_the_original_graph():
    g = _net()
    before = gc.to_text(g)
    gc.grad(g), gc.vjp(g), gc.jvp(g)
    assert gc.to_text(g) == before


def _derived_graphs():
    g = _net()
    g1 = gc.grad(g, wrt=["x", "w"])
    v = g1.input("v", (3, 4), "float64")
    g1.output("gv", gc.sum(g1.outputs["grad_x"] * v))
    return {"grad": gc.grad(g), "vjp": gc.vjp(g), "jvp": gc.jvp(g), "unsimplified": gc.grad(g, simplify=False),
            "second": gc.grad(g1, of="gv", wrt=["x", "w"], names={"x": "hx", "w": "hw"}),
            "mlp": gc.grad(_mlp_cross_entropy()), "two_layer": gc.grad(two_layer_graph(8, 6, 5, 3, dtype="float64"))}


@pytest.mark.parametrize("name", sorted(_derived_graphs()))
def test_derived_graphs_verify_and_round_trip(name):
    dg = _derived_graphs()[name]
    gc.verify(dg)
    text = gc.to_text(dg)
    back = gc.from_text(text)
    gc.verify(back)
    assert gc.to_text(back) == text
    via_json = gc.from_json(gc.to_json(dg))
    assert gc.to_text(via_json) == text
    args = random_arguments(dg, seed=11)
    expected = gc.evaluate(dg, **args)
    assert_same_outputs(gc.evaluate(back, **args), expected)
    assert_same_outputs(gc.evaluate(via_json, **args), expected)


def test_unsimplified_and_simplified_gradients_agree():
    g = _net()
    rng = np.random.default_rng(9)
    args = {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal((4, 2)), "b": rng.standard_normal(2)}
    raw = gc.grad(g, wrt=["x", "w", "b"], simplify=False)
    simple = gc.grad(g, wrt=["x", "w", "b"])
    assert len(simple.nodes) < len(raw.nodes)
    a, b = gc.evaluate(raw, **args), gc.evaluate(simple, **args)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-14, atol=1e-15)
