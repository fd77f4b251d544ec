"""The numpy reference interpreter (gc.evaluate): argument checking, conversions, aliasing,
IEEE semantics without warnings, and worked examples."""

import math
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc import examples

# ---------------------------------------------------------------- helpers


def add_graph(shape=(2, 3), dtype="float32"):
    g = gc.Graph("adder")
    x = g.input("x", shape, dtype)
    y = g.input("y", shape, dtype)
    g.output("s", x + y)
    return g


def unary_graph(fn, shape=(3,), dtype="float32", name="x"):
    g = gc.Graph("unary")
    x = g.input(name, shape, dtype)
    g.output("out", fn(x))
    return g


def raises_naming(exc, fragments, graph, **arrays) -> str:
    with pytest.raises(exc) as info:
        gc.evaluate(graph, **arrays)
    assert isinstance(info.value, gc.GraphcError)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


X23 = np.arange(6, dtype=np.float32).reshape(2, 3)
Y23 = np.ones((2, 3), np.float32)

# ---------------------------------------------------------------- missing and extra arguments


def test_missing_input():
    msg = raises_naming(gc.ArgumentError, ["missing", "y", "float32", "[2, 3]"], add_graph(), x=X23)
    assert "x (" not in msg  # x was given: only y is reported missing


def test_missing_everything():
    raises_naming(gc.ArgumentError, ["x", "y"], add_graph())


def test_extra_input():
    raises_naming(gc.ArgumentError, ["unexpected", "z"], add_graph(), x=X23, y=Y23, z=Y23)


def test_missing_and_extra_together():
    raises_naming(gc.ArgumentError, ["missing", "y", "unexpected", "why"], add_graph(), x=X23, why=Y23)


def test_missing_param():
    g = gc.Graph("p")
    x = g.input("x", (3,))
    w = g.param("w", (3,))
    g.output("o", x * w)
    raises_naming(gc.ArgumentError, ["w"], g, x=np.ones(3, np.float32))


def test_argument_error_is_also_a_type_error():
    with pytest.raises(TypeError):
        gc.evaluate(add_graph(), x=X23)


# ---------------------------------------------------------------- shapes


def test_wrong_shape():
    raises_naming(gc.ShapeError, ["'y'", "(2, 3)", "(3, 2)"], add_graph(), x=X23, y=Y23.T.copy())


def test_wrong_rank():
    raises_naming(gc.ShapeError, ["'x'", "(2, 3)", "(6,)"], add_graph(), x=X23.ravel(), y=Y23)


def test_scalar_for_a_non_scalar_input_is_not_broadcast():
    raises_naming(gc.ShapeError, ["'x'", "(2, 3)", "()"], add_graph(), x=1.0, y=Y23)


def test_list_of_wrong_length():
    g = unary_graph(gc.exp, shape=(2,))
    raises_naming(gc.ShapeError, ["'x'", "(2,)", "(3,)"], g, x=[1.0, 2.0, 3.0])


# ---------------------------------------------------------------- dtypes


def test_float64_array_for_float32_input():
    raises_naming(gc.DTypeError, ["'x'", "float32", "float64"], add_graph(), x=X23.astype(np.float64), y=Y23)


def test_float32_array_for_float64_input():
    g = add_graph(dtype="float64")
    raises_naming(gc.DTypeError, ["'y'", "float64", "float32"], g, x=X23.astype(np.float64), y=Y23)


def test_int_array_for_float_input():
    raises_naming(gc.DTypeError, ["'x'", "float32", "int64"], add_graph(), x=np.arange(6).reshape(2, 3), y=Y23)


def test_float_list_for_int_input():
    g = add_graph(shape=(2,), dtype="int32")
    raises_naming(gc.DTypeError, ["'x'", "int32", "float64"], g, x=[1.5, 2.0], y=[1, 2])


def test_float_scalar_for_int_input():
    g = unary_graph(gc.neg, shape=(), dtype="int64")
    raises_naming(gc.DTypeError, ["'x'", "int64"], g, x=2.5)


def test_int_for_bool_input():
    g = unary_graph(lambda x: gc.cast(x, "float32"), shape=(2,), dtype="bool")
    raises_naming(gc.DTypeError, ["'x'", "bool"], g, x=[1, 0])


def test_int32_array_for_int64_input_is_widened():
    g = unary_graph(gc.neg, shape=(2,), dtype="int64")
    out = gc.evaluate(g, x=np.array([1, 2], np.int32))["out"]
    assert out.dtype == np.int64 and out.tolist() == [-1, -2]


def test_bool_array_for_int_input():
    g = unary_graph(gc.neg, shape=(2,), dtype="int64")
    raises_naming(gc.DTypeError, ["'x'", "int64", "bool"], g, x=np.array([True, False]))


def test_numpy_scalar_of_wrong_dtype():
    g = unary_graph(gc.exp, shape=())
    raises_naming(gc.DTypeError, ["'x'", "float32", "float64"], g, x=np.float64(1.0))


@pytest.mark.parametrize("junk", [None, "abc", [[1.0, 2.0], [3.0]], {"a": 1}, 1 + 2j],
                         ids=["None", "str", "ragged", "dict", "complex"])
def test_unconvertible_data(junk):
    g = unary_graph(gc.exp, shape=(2,))
    raises_naming(gc.GraphcError, ["'x'"], g, x=junk)


def test_python_int_too_large_for_int32_input():
    # 2**40 does not fit int32: wrapping it to 0 would be a silent wrong answer
    g = unary_graph(lambda x: x + 0, shape=(1,), dtype="int32")
    assert gc.evaluate(g, x=[2**31 - 1])["out"].tolist() == [2**31 - 1]
    raises_naming(gc.GraphcError, ["'x'"], g, x=[2**40])


def test_python_int_too_large_for_int64_input():
    g = unary_graph(lambda x: x + 0, shape=(1,), dtype="int64")
    raises_naming(gc.GraphcError, ["'x'"], g, x=[2**70])


# ---------------------------------------------------------------- accepted conversions


def test_python_float_scalar_for_float_input():
    g = unary_graph(lambda x: x * 2.0, shape=())
    out = gc.evaluate(g, x=1.25)["out"]
    assert out.dtype == np.float32 and out.shape == () and out == 2.5


def test_python_int_scalar_for_float_input():
    g = unary_graph(lambda x: x * 2.0, shape=(), dtype="float64")
    out = gc.evaluate(g, x=3)["out"]
    assert out.dtype == np.float64 and out == 6.0


def test_list_of_ints_for_float_input():
    out = gc.evaluate(add_graph(shape=(3,)), x=[1, 2, 3], y=[10, 20, 30])["s"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [11, 22, 33])


def test_nested_list_of_floats_for_float32_input():
    out = gc.evaluate(add_graph(), x=[[0.5, 1, 2], [3, 4, 5]], y=Y23)["s"]
    np.testing.assert_array_equal(out, np.array([[1.5, 2, 3], [4, 5, 6]], np.float32))


def test_list_of_ints_for_int_input_and_numpy_scalar():
    g = add_graph(shape=(), dtype="int32")
    out = gc.evaluate(g, x=5, y=np.int32(7))["s"]
    assert out.dtype == np.int32 and out == 12


def test_float32_numpy_scalar_and_zero_d_array():
    g = add_graph(shape=())
    out = gc.evaluate(g, x=np.float32(1.5), y=np.array(2.0, np.float32))["s"]
    assert out.dtype == np.float32 and out == 3.5


def test_read_only_input_is_accepted():
    x = X23.copy()
    x.flags.writeable = False
    np.testing.assert_array_equal(gc.evaluate(add_graph(), x=x, y=Y23)["s"], X23 + 1)


# ---------------------------------------------------------------- non-contiguous inputs


def matmul_graph():
    g = gc.Graph("mm")
    a = g.input("a", (3, 4))
    b = g.input("b", (4, 2))
    g.output("p", gc.tanh(a @ b) + gc.sum(a, axis=1, keepdims=True))
    return g


def expected_mm(a, b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return np.tanh(a64 @ b64) + a64.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("layout", ["transposed", "strided", "reversed", "fortran", "broadcast"])
def test_non_contiguous_inputs(layout):
    rng = np.random.default_rng(1)
    if layout == "transposed":
        a = rng.standard_normal((4, 3)).astype(np.float32).T
    elif layout == "strided":
        a = rng.standard_normal((9, 12)).astype(np.float32)[::3, 1::3]
    elif layout == "reversed":
        a = rng.standard_normal((3, 4)).astype(np.float32)[::-1, ::-1]
    elif layout == "fortran":
        a = np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32))
    else:
        a = np.broadcast_to(rng.standard_normal((1, 4)).astype(np.float32), (3, 4))
    assert a.shape == (3, 4) and not a.flags.c_contiguous
    b = rng.standard_normal((2, 4)).astype(np.float32).T
    a_before, b_before = a.copy(), b.copy()
    out = gc.evaluate(matmul_graph(), a=a, b=b)["p"]
    np.testing.assert_allclose(out, expected_mm(a, b), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)


# ---------------------------------------------------------------- inputs are never mutated


def _identity_like_graphs():
    def identity(g, x):
        return x

    def reshaped(g, x):
        return x.reshape(3, 2)

    def transposed(g, x):
        return x.T

    def sliced(g, x):
        return x[:, 1:]

    def broadcast(g, x):
        return gc.broadcast_to(x, (4, 2, 3))

    def stop(g, x):
        return gc.stop_gradient(x)

    def relu(g, x):
        return gc.relu(x)

    return [identity, reshaped, transposed, sliced, broadcast, stop, relu]


@pytest.mark.parametrize("body", _identity_like_graphs(), ids=lambda f: f.__name__)
def test_inputs_never_mutated_and_outputs_never_alias_them(body):
    g = gc.Graph("ident")
    x = g.input("x", (2, 3))
    g.output("out", body(g, x))
    g.output("again", body(g, x))
    X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    before = X.copy()
    out = gc.evaluate(g, x=X)
    np.testing.assert_array_equal(X, before)
    assert X.flags.writeable, "evaluate must not freeze the caller's array"
    for name, arr in out.items():
        assert isinstance(arr, np.ndarray)
        assert not np.shares_memory(arr, X), name
        assert arr.flags.writeable, name
    assert not np.shares_memory(out["out"], out["again"])
    # writing to the results touches neither the input nor the other output
    expect_again = out["again"].copy()
    out["out"][...] = 99
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(out["again"], expect_again)


def test_two_outputs_naming_the_same_value_are_independent():
    g = gc.Graph("twice")
    x = g.input("x", (3,))
    e = gc.exp(x)
    g.output("a", e)
    g.output("b", e)
    g.output("x_out", x)
    g.output("x_out2", x)
    X = np.zeros(3, np.float32)
    out = gc.evaluate(g, x=X)
    np.testing.assert_array_equal(out["a"], np.ones(3, np.float32))
    np.testing.assert_array_equal(out["b"], np.ones(3, np.float32))
    names = list(out)
    for i, m in enumerate(names):
        assert out[m].flags.writeable
        assert not np.shares_memory(out[m], X)
        for n in names[i + 1:]:
            assert not np.shares_memory(out[m], out[n]), (m, n)
    out["a"][0] = 5
    assert out["b"][0] == 1
    out["x_out"][0] = 7
    assert out["x_out2"][0] == 0 and X[0] == 0


def test_const_output_does_not_alias_the_graph():
    g = gc.Graph("c")
    c = g.const(np.array([1.0, 2.0], np.float32))
    g.output("c", c)
    g.output("r", gc.reshape(c, (2, 1)))
    first = gc.evaluate(g)
    assert first["c"].flags.writeable and first["r"].flags.writeable
    assert not np.shares_memory(first["c"], c.attrs["value"])
    assert not np.shares_memory(first["c"], first["r"])
    first["c"][:] = -1
    first["r"][:] = -1
    second = gc.evaluate(g)
    np.testing.assert_array_equal(second["c"], [1.0, 2.0])
    np.testing.assert_array_equal(second["r"], [[1.0], [2.0]])


def test_repeated_evaluation_is_stable():
    g = examples.two_layer(n=4, d_in=5, hidden=3, d_out=2)
    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal(v.shape).astype(v.dtype) for n, v in g.arguments.items()}
    copies = {n: a.copy() for n, a in arrays.items()}
    a = gc.evaluate(g, **arrays)["loss"]
    b = gc.evaluate(g, **arrays)["loss"]
    assert a == b
    for n in arrays:
        np.testing.assert_array_equal(arrays[n], copies[n])


# ---------------------------------------------------------------- IEEE results without warnings


INF, NAN = np.inf, np.nan
IEEE_CASES = {  # name: (function, argument, expected float32 result, expected float64 result)
    "log0": (gc.log, [0.0, 1.0], [-INF, 0.0], None),
    "log_neg": (gc.log, [-1.0], [NAN], None),
    "exp_big": (gc.exp, [1000.0, -1000.0], [INF, 0.0], None),
    "sqrt_neg": (gc.sqrt, [-1.0], [NAN], None),
    "recip0": (gc.reciprocal, [0.0, -0.0], [INF, -INF], None),
    "0/0": (lambda x: x / x, [0.0], [NAN], None),
    "1/0": (lambda x: 1.0 / x, [0.0, -0.0], [INF, -INF], None),
    "mul_over": (lambda x: x * 1e30 * 1e30, [1.0], [INF], [1e60]),
    "inf-inf": (lambda x: gc.exp(x) - gc.exp(x), [1000.0], [NAN], None),
    "sum_over": (lambda x: gc.sum(x), [3e38, 3e38], INF, 6e38),
    "sigmoid_sat": (gc.sigmoid, [-1000.0, 1000.0], [0.0, 1.0], None),
    "softplus_sat": (gc.softplus, [1000.0, -1000.0], [1000.0, 0.0], None),
    "pow_neg": (lambda x: x ** -1.0, [0.0], [INF], None),
    "log_exp_under": (lambda x: gc.log(gc.exp(x)), [-1e6], [-INF], None),
    "nan_max": (lambda x: gc.max(x), [1.0, NAN], NAN, None),
    "cast_nan_to_int": (lambda x: gc.cast(gc.cast(x, "int32") * 0, "float32"), [NAN, INF], [0.0, 0.0], None),
}


@pytest.mark.parametrize("case", IEEE_CASES, ids=IEEE_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ieee_results_without_warnings(case, dtype):
    fn, arg, expected32, expected64 = IEEE_CASES[case]
    expected = expected32 if dtype == "float32" or expected64 is None else expected64
    g = unary_graph(fn, shape=(len(arg),), dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gc.evaluate(g, x=np.array(arg, dtype))["out"]
    np.testing.assert_allclose(out, np.array(expected, np.float64), rtol=1e-6)
    if case != "cast_nan_to_int":
        assert out.dtype == np.dtype(dtype)


def test_evaluate_restores_numpy_error_state():
    before = np.geterr()
    with np.errstate(all="raise"):
        g = unary_graph(gc.log)
        out = gc.evaluate(g, x=np.zeros(3, np.float32))["out"]
        assert np.all(out == -np.inf)
        assert np.geterr()["divide"] == "raise"
    assert np.geterr() == before


def test_conversion_of_python_floats_emits_no_warning():
    # 1e300 does not fit float32: either refuse it (a GraphcError) or give IEEE inf, but no warning
    g = unary_graph(lambda x: x * 1.0, shape=(2,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = gc.evaluate(g, x=[1e300, 1.0])["out"]
        except gc.GraphcError as e:
            assert "'x'" in str(e)
        else:
            np.testing.assert_array_equal(out, np.array([np.inf, 1.0], np.float32))


def test_integer_power_with_negative_exponent_is_a_data_error():
    g = unary_graph(lambda x: x ** x, shape=(1,), dtype="int64")
    with pytest.raises(gc.GraphcError):
        gc.evaluate(g, x=np.array([-1]))


def test_index_out_of_range_is_a_data_error():
    g = gc.Graph("oh")
    labels = g.input("labels", (3,), "int64")
    g.output("h", gc.one_hot(labels, 4))
    with pytest.raises(gc.DataError) as info:
        gc.evaluate(g, labels=np.array([0, 4, 1]))
    assert "4" in str(info.value)


# ---------------------------------------------------------------- worked examples


def test_sigmoid_neuron():
    """f(w, x) = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))) with w = [2, -3, -3], x = [-1, -2]: f(1) = 0.73."""
    g = gc.Graph("neuron")
    w = g.param("w", (3,), "float64")
    x = g.input("x", (2,), "float64")
    z = w[0] * x[0] + w[1] * x[1] + w[2]
    g.output("z", z)
    g.output("f", 1.0 / (1.0 + gc.exp(-z)))
    g.output("f_op", gc.sigmoid(z))
    out = gc.evaluate(g, w=[2.0, -3.0, -3.0], x=[-1.0, -2.0])
    assert out["z"] == 1.0
    expected = 1 / (1 + math.exp(-1))
    assert abs(out["f"] - expected) < 1e-15
    assert abs(out["f_op"] - expected) < 1e-15
    assert round(float(out["f"]), 2) == 0.73
    assert out["f"].shape == ()


def test_add_mul_circuit():
    """f(x, y, z) = (x + y) * z with x = -2, y = 5, z = -4 gives -12."""
    g = gc.Graph("circuit")
    x, y, z = (g.input(n, ()) for n in "xyz")
    q = x + y
    g.output("q", q)
    g.output("f", q * z)
    out = gc.evaluate(g, x=-2.0, y=5.0, z=-4.0)
    assert out["q"] == 3.0 and out["f"] == -12.0
    assert out["f"].dtype == np.float32


def test_two_layer_net_matches_numpy():
    g = examples.two_layer(n=8, d_in=20, hidden=6, d_out=3)
    rng = np.random.default_rng(3)
    a = {n: rng.standard_normal(v.shape).astype(v.dtype) for n, v in g.arguments.items()}
    h = 1 / (1 + np.exp(-(a["x"].astype(np.float64) @ a["w1"])))
    expected = np.sum((h @ a["w2"] - a["y"]) ** 2)
    out = gc.evaluate(g, **a)
    assert list(out) == ["loss"]
    assert out["loss"].dtype == np.float32 and out["loss"].shape == ()
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)


# ---------------------------------------------------------------- argument names


def test_input_named_graph():
    g = gc.Graph("g")
    a = g.input("graph", (2,))
    g.output("out", a * 2.0)
    out = gc.evaluate(g, graph=np.array([1.0, 2.0], np.float32))
    np.testing.assert_array_equal(out["out"], [2.0, 4.0])


def test_inputs_named_like_evaluate_internals():
    g = gc.Graph("g")
    names = ["arrays", "self", "env", "name"]
    vals = [g.input(n, ()) for n in names]
    g.output("total", vals[0] + vals[1] * 10.0 + vals[2] * 100.0 + vals[3] * 1000.0)
    out = gc.evaluate(g, arrays=1.0, self=2.0, env=3.0, name=4.0)
    assert out["total"] == 4321.0


def test_graph_with_no_arguments_rejects_any():
    g = gc.Graph("c")
    g.output("c", g.const(1.5))
    assert gc.evaluate(g)["c"] == 1.5
    raises_naming(gc.ArgumentError, ["unexpected", "x"], g, x=1.0)
