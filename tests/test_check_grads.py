"""gc.check_grads: passes on correct graphs in each mode and order, fails with a message that
names the mode, argument and worst element on wrong derivatives, refuses bad calls with named
errors, and never writes the caller's arrays."""

import numpy as np
import pytest

import graphc as gc
from graphc.check import Comparison
from graphc.passes.autodiff import derivatives


def _tanh_graph(dtype="float64"):
    g = gc.Graph("tanh_net")
    x = g.input("x", (3, 4), dtype)
    y = g.input("y", (3, 4), dtype)
    g.output("out", gc.tanh(x * y) * gc.tanh(x))
    g.output("total", gc.sum(gc.tanh(x + y) ** 2))
    return g


def _tanh_arrays(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {"x": rng.uniform(-1.5, 1.5, (3, 4)).astype(dtype), "y": rng.uniform(-1.5, 1.5, (3, 4)).astype(dtype)}


def _softmax_ce():
    """A float32 classifier: matmul, bias, softmax cross-entropy on int labels, plus an int output."""
    g = gc.Graph("classifier")
    x = g.input("x", (6, 5))
    labels = g.input("labels", (6,), "int64")
    w, b = g.param("w", (5, 3)), g.param("b", (3,))
    logits = x @ w + b
    g.output("loss", gc.cross_entropy(logits, labels))
    g.output("probs", gc.softmax(logits))
    g.output("pred", gc.argmax(logits, axis=-1))
    rng = np.random.default_rng(1)
    arrays = {"x": rng.standard_normal((6, 5)).astype(np.float32), "labels": rng.integers(0, 3, 6),
              "w": (rng.standard_normal((5, 3)) * 0.5).astype(np.float32), "b": np.zeros(3, np.float32)}
    return g, arrays


def _cut_graph(n=4):
    """out = x + stop_gradient(x * x): the analytic gradient misses 2x, worst where |x| is largest."""
    g = gc.Graph("cut")
    x = g.param("x", (n,), "float64")
    g.output("out", x + gc.stop_gradient(x * x))
    return g


CUT_X = np.array([0.01, -0.02, 3.0, 0.01])  # the worst element is x[2]


# ---------------------------------------------------------------- correct graphs pass


@pytest.mark.parametrize("modes", ["rev", "fwd", ("rev", "fwd")])
def test_tanh_graph_passes_in_each_mode(modes):
    result = gc.check_grads(_tanh_graph(), _tanh_arrays(), modes=modes)
    expected = {"rev": "reverse", "fwd": "forward"}
    wanted = {expected[m] for m in ((modes,) if isinstance(modes, str) else modes)}
    assert {c.mode for c in result} == wanted
    assert {c.argument for c in result} == {"x", "y"}  # no params: the float inputs
    assert all(isinstance(c, Comparison) and c.passed and c.ratio <= 1 for c in result)
    assert max(c.max_abs_error for c in result) < 1e-8
    if "fwd" in wanted:  # one comparison per argument and float output
        assert {(c.argument, c.output) for c in result if c.mode == "forward"} == \
            {(a, o) for a in "xy" for o in ("out", "total")}


def test_softmax_cross_entropy_float32_checks_params_in_float64():
    g, arrays = _softmax_ce()
    result = gc.check_grads(g, arrays, order=2)
    assert {c.argument for c in result} == {"w", "b"}  # the params, as gc.grad by default
    assert {(c.mode, c.method) for c in result} == {
        ("reverse", "gc.vjp"), ("forward", "gc.jvp"),
        ("second order", "reverse over reverse"), ("second order", "forward over reverse")}
    assert {c.output for c in result if c.mode == "forward"} == {"loss", "probs"}  # float outputs only
    # float32 differences with eps ~1e-6 would be off by ~1e-2; the float64 twin is ~1e-10
    assert max(c.max_abs_error for c in result) < 1e-8
    result = gc.check_grads(g, arrays, wrt=["x", "w"], modes="rev")
    assert [c.argument for c in result] == ["x", "w"]


def test_float32_tanh_graph_passes_with_float64_tolerances():
    result = gc.check_grads(_tanh_graph("float32"), _tanh_arrays(np.float32), rtol=1e-7, atol=1e-9)
    assert result and all(c.passed for c in result)
    assert max(c.max_abs_error for c in result) < 1e-8  # float32 differences would be ~1e-2 off


def test_order_2_on_a_smooth_function():
    g = gc.Graph("smooth")
    w = g.param("w", (3, 2), "float64")
    x = g.input("x", (4, 3), "float64")
    g.output("f", gc.sum(gc.sin(x @ w) * gc.exp(w[0])) + gc.sum(w * w * w))
    rng = np.random.default_rng(2)
    arrays = {"w": rng.uniform(-1, 1, (3, 2)), "x": rng.uniform(-1, 1, (4, 3))}
    result = gc.check_grads(g, arrays, order=2, wrt=["w", "x"])
    second = [c for c in result if c.mode == "second order"]
    assert {(c.method, c.argument) for c in second} == {
        (m, a) for m in ("reverse over reverse", "forward over reverse") for a in ("w", "x")}
    only_rev = gc.check_grads(g, arrays, order=2, modes="rev")
    assert {c.method for c in only_rev} == {"gc.vjp", "reverse over reverse"}


def test_large_argument_is_checked_along_directions():
    g = gc.Graph("wide")
    w = g.param("w", (10, 10), "float64")
    g.output("f", gc.tanh(w) @ gc.tanh(w))
    arrays = {"w": np.random.default_rng(3).uniform(-1, 1, (10, 10))}
    (rev, fwd) = gc.check_grads(g, arrays, directions=3)
    assert rev.directional and rev.index[0] in range(3) and rev.passed
    assert not fwd.directional and fwd.output == "f"
    (rev, _) = gc.check_grads(g, arrays, max_elements=100)
    assert not rev.directional and len(rev.index) == 2


def test_names_the_derived_graphs_add_cannot_clash():
    g = gc.Graph("clash")
    a = g.param("cotangent_loss", (2,), "float64")
    h = g.input("hv_a0", (2,), "float64")
    g.output("loss", gc.sum(gc.exp(a) * h))
    g.output("gv", gc.square(a))
    result = gc.check_grads(g, {"cotangent_loss": np.array([0.3, -0.4]), "hv_a0": np.array([1.5, 2.0])}, order=2)
    assert {c.argument for c in result} == {"cotangent_loss"}
    assert {c.output for c in result} == {None, "loss", "gv"}


# ---------------------------------------------------------------- wrong gradients fail


def test_stop_gradient_makes_reverse_mode_fail_at_the_worst_element():
    with pytest.raises(gc.GradientCheckError) as info:
        gc.check_grads(_cut_graph(), {"x": CUT_X})
    message = str(info.value)
    assert message.startswith("reverse check failed (gc.vjp) for argument 'x', at x[2]:")
    for part in ("analytically", "by central differences", "abs error", "rel error",
                 "over the tolerance atol + rtol * max|numeric|", "atol=1e-07, rtol=1e-05"):
        assert part in message
    c = info.value.comparison
    assert (c.mode, c.argument, c.index) == ("reverse", "x", (2,)) and not c.passed and c.ratio > 1e4
    assert f"{c.analytic:.10g} analytically but {c.numeric:.10g} by central differences" in message
    w = 1 + 2 * CUT_X[2]  # numeric / analytic at x[2], whatever the random weight
    assert c.numeric == pytest.approx(w * c.analytic, rel=1e-8)
    assert isinstance(info.value, gc.GraphcError)


def test_stop_gradient_makes_forward_mode_fail_at_the_worst_output_element():
    with pytest.raises(gc.GradientCheckError, match=r"^forward check failed \(gc\.jvp\) for argument 'x', "
                                                    r"at output out\[2\]:"):
        gc.check_grads(_cut_graph(), {"x": CUT_X}, modes="fwd")


def test_a_wrong_gradient_of_a_large_argument_names_the_direction():
    x = np.linspace(-1, 1, 80)
    with pytest.raises(gc.GradientCheckError, match=r"for argument 'x', along random direction [0-3] \(of 0 to 3: "
                                                    r"'x' has 80 elements, more than max_elements=64"):
        gc.check_grads(_cut_graph(80), {"x": x})


def test_a_wrong_derivative_rule_fails_both_modes(monkeypatch):
    g, arrays = _tanh_graph(), _tanh_arrays()
    monkeypatch.setitem(derivatives.PARTIALS, "tanh", lambda v, i: 1 - v)  # should be 1 - v**2
    with pytest.raises(gc.GradientCheckError, match=r"^reverse check failed .* for argument 'x', at x\[\d, \d\]"):
        gc.check_grads(g, arrays)
    with pytest.raises(gc.GradientCheckError, match=r"^forward check failed .* for argument 'x', at output out\["):
        gc.check_grads(g, arrays, modes="fwd")


def test_a_rule_wrong_only_in_its_own_derivative_fails_second_order(monkeypatch):
    g, arrays = _tanh_graph(), _tanh_arrays()
    # the right first derivative, but one that claims to be constant: second order is wrong
    monkeypatch.setitem(derivatives.PARTIALS, "tanh", lambda v, i: 1 - gc.square(gc.stop_gradient(v)))
    assert all(c.passed for c in gc.check_grads(g, arrays))
    for modes, method in (("rev", "reverse over reverse"), ("fwd", "forward over reverse")):
        with pytest.raises(gc.GradientCheckError) as info:
            gc.check_grads(g, arrays, order=2, modes=modes)
        assert str(info.value).startswith(f"second order check failed ({method}) for argument 'x', at x[")
        assert info.value.comparison.mode == "second order"


# ---------------------------------------------------------------- bad calls


def test_bad_calls_raise_named_errors():
    g, arrays = _tanh_graph(), _tanh_arrays()
    cases = [
        (gc.ArgumentError, r"missing y", lambda: gc.check_grads(g, {"x": arrays["x"]})),
        (gc.ArgumentError, r"unexpected z", lambda: gc.check_grads(g, {**arrays, "z": arrays["x"]})),
        (gc.DTypeError, r"input 'x': expected dtype float64, got float32",
         lambda: gc.check_grads(g, {**arrays, "x": arrays["x"].astype(np.float32)})),
        (gc.ShapeError, r"input 'y': expected shape", lambda: gc.check_grads(g, {**arrays, "y": np.zeros(3)})),
        (gc.GraphError, r"no input or param named 'w'", lambda: gc.check_grads(g, arrays, wrt=["w"])),
        (gc.ArgumentError, r"order must be 1 or 2, got 3", lambda: gc.check_grads(g, arrays, order=3)),
        (gc.ArgumentError, r"order must be 1 or 2, got True", lambda: gc.check_grads(g, arrays, order=True)),
        (gc.ArgumentError, r"modes takes one or more of 'rev', 'fwd', got 'bwd'",
         lambda: gc.check_grads(g, arrays, modes=("rev", "bwd"))),
        (gc.ArgumentError, r"got none", lambda: gc.check_grads(g, arrays, modes=())),
        (gc.ArgumentError, r"eps must be a positive", lambda: gc.check_grads(g, arrays, eps=0)),
        (gc.ArgumentError, r"atol must be a non-negative", lambda: gc.check_grads(g, arrays, atol=-1)),
        (gc.ArgumentError, r"directions must be an int >= 1", lambda: gc.check_grads(g, arrays, directions=0)),
        (gc.ArgumentError, r"expected a gc.Graph, got dict", lambda: gc.check_grads(arrays, arrays)),
        (gc.ArgumentError, r"nothing to check", lambda: gc.check_grads(g, arrays, wrt=[])),
        (gc.ArgumentError, r"eps=1e-06 does not move x\[0\] = 1000000000000.0; pass a larger eps",
         lambda: gc.check_grads(_cut_graph(1), {"x": np.array([1e12])}, eps=1e-6)),
    ]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern):
            call()


def test_non_float_arguments_and_outputs_are_refused():
    g, arrays = _softmax_ce()
    with pytest.raises(gc.DTypeError, match=r"wrt: input 'labels' is int64"):
        gc.check_grads(g, arrays, wrt=["w", "labels"])
    h = gc.Graph("ints")
    x = h.param("x", (3,))
    h.output("top", gc.argmax(x))
    with pytest.raises(gc.DTypeError, match=r"graph 'ints' has no float outputs"):
        gc.check_grads(h, {"x": np.ones(3, np.float32)})


# ---------------------------------------------------------------- the caller's arrays


def test_arrays_are_not_mutated_and_read_only_arrays_work():
    g, arrays = _softmax_ce()
    before = {k: v.copy() for k, v in arrays.items()}
    for a in arrays.values():
        a.flags.writeable = False
    gc.check_grads(g, arrays, order=2, wrt=["x", "w", "b"])
    with pytest.raises(gc.GradientCheckError):
        gc.check_grads(_cut_graph(), {"x": CUT_X})
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], strict=True)
    np.testing.assert_array_equal(CUT_X, [0.01, -0.02, 3.0, 0.01])
