"""gc.simplify: algebraic identities, CSE, DCE and constant folding, each checked structurally
(which ops remain) and semantically (gc.evaluate gives the same result before and after:
bit for bit where no float operation is reassociated), and on random graphs (same outputs,
never more nodes).

Signed zeros: rewrites such as ``x + 0 -> x`` and ``x * 0 -> zeros`` may turn -0.0 into 0.0 or
back (as every algebraic simplifier for ML graphs does), so the semantic checks compare values
with ``==`` (NaN matching NaN), except where the inputs hold no zeros at all.
"""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, note, reject, settings
from hypothesis import strategies as st

import graphc as gc
from gradcheck import examples
from strategies import assert_same_outputs, graphs, random_arguments

RNG = np.random.default_rng(0)
X34 = RNG.standard_normal((3, 4))  # no zeros: bit-identical comparisons are fair


def ops(graph) -> Counter:
    """How many nodes of each op, sources left out."""
    return Counter(v.op for v in graph.nodes if v.op not in ("input", "param"))


def simplified(graph):
    s = gc.simplify(graph)
    gc.verify(s)
    return s


def assert_same_values(actual: dict, expected: dict, rtol=0.0):
    """Same names, dtypes, shapes; equal values (NaN == NaN, -0.0 == 0.0), or within ``rtol``."""
    assert list(actual) == list(expected)
    for k in expected:
        a, e = np.asarray(actual[k]), np.asarray(expected[k])
        assert a.dtype == e.dtype and a.shape == e.shape, (k, a.dtype, e.dtype, a.shape, e.shape)
        if a.dtype.kind == "f":
            nan = np.isnan(e)
            np.testing.assert_array_equal(np.isnan(a), nan, err_msg=f"{k}: NaN positions")
            if rtol:
                np.testing.assert_allclose(a[~nan], e[~nan], rtol=rtol, atol=0, err_msg=k)
            else:
                np.testing.assert_array_equal(a[~nan], e[~nan], err_msg=k)
        else:
            np.testing.assert_array_equal(a, e, err_msg=k)


def graph_x(shape=(3, 4), dtype="float64", name="g"):
    g = gc.Graph(name)
    return g, g.input("x", shape, dtype)


# ================================================================ identities


@pytest.mark.parametrize("form", ["x*1", "1*x", "x*ones", "x+0", "0+x", "x-0", "x+zeros", "x/1", "x**1",
                                  "--x", "----x"])
def test_identities_that_give_x_back(form):
    g, x = graph_x()
    one, zero = g.const(np.ones(4)), g.const(np.zeros((3, 4)))
    build = {"x*1": lambda: x * 1.0, "1*x": lambda: 1.0 * x, "x*ones": lambda: x * one, "x+0": lambda: x + 0.0,
             "0+x": lambda: 0.0 + x, "x-0": lambda: x - 0.0, "x+zeros": lambda: x + zero, "x/1": lambda: x / 1.0,
             "x**1": lambda: x ** 1.0, "--x": lambda: -(-x), "----x": lambda: -(-(-(-x)))}[form]
    g.output("y", build())
    s = simplified(g)
    assert s.outputs["y"] is s.inputs["x"], gc.to_text(s)
    assert ops(s) == Counter()
    assert_same_outputs(gc.evaluate(s, x=X34), gc.evaluate(g, x=X34))


@pytest.mark.parametrize("form", ["0-x", "x*-1", "-1*x", "---x"])
def test_identities_that_give_a_negation(form):
    g, x = graph_x()
    build = {"0-x": lambda: 0.0 - x, "x*-1": lambda: x * -1.0, "-1*x": lambda: -1.0 * x, "---x": lambda: -(-(-x))}
    g.output("y", build[form]())
    s = simplified(g)
    assert ops(s) == Counter({"neg": 1}), gc.to_text(s)
    assert s.outputs["y"].inputs[0] is s.inputs["x"]
    assert_same_outputs(gc.evaluate(s, x=X34), gc.evaluate(g, x=X34))


@pytest.mark.parametrize("form", ["x*0", "0*x", "x*zeros", "matmul_zeros"])
def test_multiplying_by_zero_gives_zeros(form):
    g, x = graph_x()
    if form == "matmul_zeros":
        y = x @ g.const(np.zeros((4, 2)))
    else:
        y = {"x*0": lambda: x * 0.0, "0*x": lambda: 0.0 * x, "x*zeros": lambda: x * g.const(np.zeros(4))}[form]()
    g.output("y", gc.exp(y))
    s = simplified(g)
    assert "mul" not in ops(s) and "matmul" not in ops(s) and "exp" not in ops(s), gc.to_text(s)
    # zeros -> exp(0) = 1, folded: only a constant and its broadcast remain
    assert set(ops(s)) <= {"const", "broadcast_to"}
    out = gc.evaluate(s, x=X34)["y"]
    np.testing.assert_array_equal(out, np.ones(y.shape), strict=True)
    assert_same_values(gc.evaluate(s, x=X34), gc.evaluate(g, x=X34))


def test_pow_two_becomes_square():
    g, x = graph_x()
    g.output("y", x ** 2)
    s = simplified(g)
    assert ops(s) == Counter({"square": 1})
    assert_same_outputs(gc.evaluate(s, x=X34), gc.evaluate(g, x=X34))


def test_broadcast_of_broadcast_is_one_broadcast():
    g, x = graph_x((4,))
    g.output("y", gc.broadcast_to(gc.broadcast_to(gc.broadcast_to(x, (1, 4)), (3, 4)), (2, 3, 4)))
    assert ops(g)["broadcast_to"] == 3
    s = simplified(g)
    assert ops(s) == Counter({"broadcast_to": 1})
    assert s.outputs["y"].inputs[0] is s.inputs["x"] and s.outputs["y"].shape == (2, 3, 4)
    xs = RNG.standard_normal(4)
    assert_same_outputs(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))


def test_reshape_of_reshape_is_one_reshape():
    g, x = graph_x((2, 6))
    g.output("y", gc.reshape(gc.reshape(gc.reshape(x, (3, 4)), (12,)), (4, 3)))
    g.output("back", gc.reshape(gc.reshape(x, (3, 4)), (2, 6)))
    assert ops(g)["reshape"] == 5
    s = simplified(g)
    assert ops(s) == Counter({"reshape": 1}), gc.to_text(s)
    assert s.outputs["y"].inputs[0] is s.inputs["x"]
    assert s.outputs["back"] is s.inputs["x"]
    xs = RNG.standard_normal((2, 6))
    assert_same_outputs(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))


def test_same_shape_layout_ops_vanish():
    g, x = graph_x()
    g.output("r", g.add_node("reshape", [x], {"shape": (3, 4)}))
    g.output("b", g.add_node("broadcast_to", [x], {"shape": (3, 4)}))
    g.output("t", g.add_node("transpose", [x], {"perm": (0, 1)}))
    s = simplified(g)
    assert ops(s) == Counter()
    assert all(v is s.inputs["x"] for v in s.outputs.values())
    assert_same_outputs(gc.evaluate(s, x=X34), gc.evaluate(g, x=X34))


def test_transpose_of_transpose_composes():
    g, x = graph_x((2, 3, 4))
    g.output("identity", gc.transpose(gc.transpose(x, (1, 2, 0)), (2, 0, 1)))
    g.output("composed", gc.transpose(gc.transpose(x, (1, 0, 2)), (2, 0, 1)))
    g.output("T_T", x.T.T)
    s = simplified(g)
    assert s.outputs["identity"] is s.inputs["x"]
    assert s.outputs["T_T"] is s.inputs["x"]
    composed = s.outputs["composed"]
    assert composed.op == "transpose" and composed.inputs[0] is s.inputs["x"]
    assert composed.attrs["perm"] == (2, 1, 0)  # np.transpose(np.transpose(a, (1,0,2)), (2,0,1))
    assert ops(s) == Counter({"transpose": 1})
    xs = RNG.standard_normal((2, 3, 4))
    out = gc.evaluate(s, x=xs)
    np.testing.assert_array_equal(out["composed"], np.transpose(np.transpose(xs, (1, 0, 2)), (2, 0, 1)))
    assert_same_outputs(out, gc.evaluate(g, x=xs))


@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_reduction_over_size_one_axes(op):
    g, x = graph_x((3, 1, 4, 1))
    red = getattr(gc, op)
    g.output("only_unit", red(x, axis=1))
    g.output("only_unit_keep", red(x, axis=(1, 3), keepdims=True))
    g.output("mixed", red(x, axis=(0, 1, 3)))
    s = simplified(g)
    # a reduction over size-1 axes only is a reshape (or nothing, with keepdims)
    assert s.outputs["only_unit"].op == "reshape" and s.outputs["only_unit"].inputs[0] is s.inputs["x"]
    assert s.outputs["only_unit_keep"] is s.inputs["x"]
    # a reduction that also reduces a real axis stays one reduction (perhaps with the unit axes
    # dropped), without growing the graph
    assert ops(s)[op] == 1
    assert len(s.nodes) <= len(g.nodes) - 1, gc.to_text(s)
    xs = RNG.standard_normal((3, 1, 4, 1))
    assert_same_outputs(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))


def test_where_with_equal_branches_or_a_constant_condition():
    g, x = graph_x()
    y = g.input("y", (3, 4), "float64")
    g.output("same", gc.where(x > y, x, x))
    g.output("true", gc.where(True, x, y))
    g.output("false", gc.where(g.const(np.zeros(4, bool)), x, y))
    s = simplified(g)
    assert s.outputs["same"] is s.inputs["x"]
    assert s.outputs["true"] is s.inputs["x"]
    assert s.outputs["false"] is s.inputs["y"]
    assert ops(s) == Counter()
    ys = RNG.standard_normal((3, 4))
    assert_same_outputs(gc.evaluate(s, x=X34, y=ys), gc.evaluate(g, x=X34, y=ys))


# ================================================================ CSE and DCE


def test_cse_merges_duplicate_subexpressions():
    g, x = graph_x()
    y = g.input("y", (4,), "float64")
    a = gc.exp(x) * y + gc.tanh(x)
    b = gc.exp(x) * y + gc.tanh(x)  # the same expression, built again
    c = g.const(np.arange(4.0))
    d = g.const(np.arange(4.0))  # an equal constant
    g.output("z", a - b * (x + c) / (x + d))
    g.output("axes", gc.sum(x, axis=0) + gc.sum(x, axis=(0,)))
    g.output("other_axis", gc.sum(x, axis=1))  # different attributes: not merged
    before = ops(g)
    assert before["exp"] == 2 and before["tanh"] == 2 and before["sum"] == 3
    s = simplified(g)
    after = ops(s)
    assert after["exp"] == 1 and after["tanh"] == 1 and after["mul"] == 2 and after["add"] == 3
    assert after["sum"] == 2
    assert sum(1 for v in s.nodes if v.op == "const" and v.shape == (4,)) == 1
    ys = RNG.standard_normal(4)
    assert_same_outputs(gc.evaluate(s, x=X34, y=ys), gc.evaluate(g, x=X34, y=ys))


def test_cse_respects_dtypes_and_operand_order():
    g, x = graph_x()
    y = g.input("y", (3, 4), "float64")
    g.output("xy", x - y)
    g.output("yx", y - x)
    g.output("c32", gc.cast(x, "float32"))
    g.output("c64", gc.cast(gc.cast(x, "float32"), "float64"))
    s = simplified(g)
    assert ops(s)["sub"] == 2 and ops(s)["cast"] == 2
    ys = RNG.standard_normal((3, 4))
    assert_same_outputs(gc.evaluate(s, x=X34, y=ys), gc.evaluate(g, x=X34, y=ys))


def test_dce_drops_unused_values_and_keeps_inputs_and_params():
    g, x = graph_x()
    unused_in = g.input("unused_in", (2,), "int32")
    w = g.param("w", (4,), "float64")
    unused_p = g.param("unused_p", (5,), "float32")
    dead = gc.tanh(x) @ g.const(np.ones((4, 7)))  # noqa: F841 - never output
    dead2 = gc.exp(gc.cast(unused_in, "float64"))  # noqa: F841
    g.output("y", gc.sin(x * w))
    s = simplified(g)
    assert ops(s) == Counter({"mul": 1, "sin": 1, "broadcast_to": 1})
    assert set(s.inputs) == {"x", "unused_in"} and set(s.params) == {"w", "unused_p"}
    assert list(s.arguments) == list(g.arguments)  # the call signature is unchanged
    assert s.arguments["unused_p"].dtype == "float32" and s.arguments["unused_p"].shape == (5,)
    args = dict(x=X34, unused_in=np.array([1, 2], np.int32), w=RNG.standard_normal(4),
                unused_p=np.zeros(5, np.float32))
    assert_same_outputs(gc.evaluate(s, **args), gc.evaluate(g, **args))


def test_dce_keeps_values_that_outputs_need_through_several_names():
    g, x = graph_x()
    t = gc.tanh(x)
    g.output("a", t)
    g.output("b", t)
    g.output("x", x)
    s = simplified(g)
    assert s.outputs["a"] is s.outputs["b"] and s.outputs["x"] is s.inputs["x"]
    assert ops(s) == Counter({"tanh": 1})


# ================================================================ constant folding


def test_folding_splats():
    g, x = graph_x()
    two = gc.broadcast_to(g.const(2.0, "float64"), (3, 4))
    three = gc.broadcast_to(g.const(3.0, "float64"), (3, 4))
    g.output("y", x + gc.exp(two * three - 6.0))  # exp(0) = 1
    g.output("s", gc.sum(gc.broadcast_to(g.const(0.5, "float64"), (4, 4))))  # 8.0
    g.output("m", gc.max(gc.broadcast_to(g.const(np.float64(-1.5)), (2, 3)), axis=1))
    s = simplified(g)
    assert ops(s)["add"] == 1 and "exp" not in ops(s) and "mul" not in ops(s) and "sum" not in ops(s)
    assert "max" not in ops(s)
    consts = sorted(float(v.attrs["value"]) for v in s.nodes if v.op == "const")
    assert consts == [-1.5, 1.0, 8.0]
    out = gc.evaluate(s, x=X34)
    np.testing.assert_array_equal(out["y"], X34 + 1.0)
    np.testing.assert_array_equal(out["s"], 8.0)
    np.testing.assert_array_equal(out["m"], [-1.5, -1.5])
    assert_same_outputs(out, gc.evaluate(g, x=X34))


def test_folding_small_dense_constants():
    g, x = graph_x((3,))
    c = g.const(np.array([1.0, 2.0, 3.0]))
    d = g.const(np.array([4.0, 5.0, 6.0]))
    m = g.const(np.arange(6.0).reshape(2, 3))
    g.output("sum", x + (c + d))
    g.output("exp", x * gc.exp(c))
    g.output("mat", x + gc.reshape(m.T @ g.const(np.array([1.0, 2.0])), (3,)))
    g.output("int", gc.cast(g.const(np.array([3, 4, 5], np.int32)) * g.const(np.array([2, 2, 1], np.int32)),
                            "float64") + x)
    s = simplified(g)
    assert ops(s) == Counter({"const": 4, "add": 3, "mul": 1}), gc.to_text(s)
    values = sorted(tuple(v.attrs["value"].tolist()) for v in s.nodes if v.op == "const")
    assert values == sorted([(5.0, 7.0, 9.0), tuple(np.exp([1.0, 2.0, 3.0])), (6.0, 9.0, 12.0), (6.0, 8.0, 5.0)])
    xs = RNG.standard_normal(3)
    assert_same_outputs(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))


def test_folding_constant_expressions_with_python_scalars():
    """``c + d * 2.0`` is all constant: the scalar's broadcast splat should fold with ``d``."""
    g, x = graph_x((3,))
    c = g.const(np.array([1.0, 2.0, 3.0]))
    d = g.const(np.array([4.0, 5.0, 6.0]))
    g.output("y", x + (c + d * 2.0))
    s = simplified(g)
    assert ops(s) == Counter({"const": 1, "add": 1}), gc.to_text(s)
    np.testing.assert_array_equal(gc.evaluate(s, x=np.zeros(3))["y"], [9.0, 12.0, 15.0])


def test_folding_concat_of_different_splats():
    g, x = graph_x((5,))
    ones = gc.broadcast_to(g.const(1.0, "float64"), (2,))
    twos = gc.broadcast_to(g.const(2.0, "float64"), (3,))
    g.output("y", x * gc.concat([ones, twos]))
    s = simplified(g)
    xs = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(gc.evaluate(s, x=xs)["y"], [1.0, 2.0, 6.0, 8.0, 10.0])
    assert_same_outputs(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))


def test_large_non_splat_constants_are_left_alone():
    g, x = graph_x((50, 50))
    big = g.const(np.arange(2500.0).reshape(50, 50))
    g.output("y", x + big * big)
    s = simplified(g)
    xs = RNG.standard_normal((50, 50))
    assert_same_outputs(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))
    assert max(v.size for v in s.nodes if v.op == "const") <= 2500


def test_folding_keeps_ieee_results_of_constant_ops():
    g, x = graph_x((3,))
    c = g.const(np.array([-1.0, 0.0, 1.0]))
    g.output("log", gc.log(c) + x)  # nan, -inf, 0
    g.output("div", gc.broadcast_to(g.const(1.0, "float64"), (3,)) / gc.broadcast_to(g.const(0.0, "float64"), (3,)))
    s = simplified(g)
    assert "log" not in ops(s) and "div" not in ops(s)
    out = gc.evaluate(s, x=np.zeros(3))
    np.testing.assert_array_equal(out["log"], [np.nan, -np.inf, 0.0])
    np.testing.assert_array_equal(out["div"], [np.inf] * 3)


# ================================================================ the pass as a whole


def test_simplify_leaves_its_input_alone_and_is_idempotent():
    g, x = graph_x()
    g.output("y", gc.sum(-(-(x * 1.0 + 0.0)) + gc.exp(x) + gc.exp(x), axis=0))
    before = gc.to_text(g)
    s = simplified(g)
    assert gc.to_text(g) == before
    assert gc.to_text(simplified(s)) == gc.to_text(s)
    assert len(s.nodes) < len(g.nodes)


def test_gradient_graphs_are_simplified():
    g, x = graph_x()
    w = g.param("w", (4,), "float64")
    g.output("loss", gc.sum(gc.tanh(x * w)))
    raw = gc.grad(g, simplify=False)
    dg = gc.grad(g)
    assert len(dg.nodes) < len(raw.nodes)
    assert gc.to_text(simplified(raw)) == gc.to_text(dg)
    assert gc.to_text(simplified(dg)) == gc.to_text(dg)
    # the seed gradient of 1 is not multiplied in, and the gradient shares tanh with the forward
    assert ops(dg)["tanh"] == 1
    assert not any(v.op == "mul" and any(i.op == "broadcast_to" and i.inputs[0].op == "const"
                                         and float(i.inputs[0].attrs["value"]) == 1.0 for i in v.inputs)
                   for v in dg.nodes)


# ================================================================ random graphs


@st.composite
def random_graphs(draw, **kw):
    try:
        return draw(graphs(**kw))
    except gc.GraphcError:  # a fault of the graph strategy, not of simplify: skip the example
        reject()


def _may_round_differently(graph) -> bool:
    """Folding a float sum/matmul of constants can round differently from the accumulation."""
    return any(v.op in ("sum", "matmul") and v.dtype.startswith("float") for v in graph.nodes)


@settings(max_examples=examples(60))
@given(g=random_graphs(), seed=st.integers(0, 2**16))
def test_simplify_preserves_the_outputs_of_random_graphs(g, seed):
    note(gc.to_text(g))
    s = gc.simplify(g)
    note(gc.to_text(s))
    gc.verify(s)
    assert list(s.outputs) == list(g.outputs)
    assert list(s.arguments) == list(g.arguments)
    args = random_arguments(g, seed)
    expected, actual = gc.evaluate(g, **args), gc.evaluate(s, **args)
    try:
        assert_same_values(actual, expected)
    except AssertionError:
        if not _may_round_differently(g):
            raise
        assert_same_values(actual, expected, rtol=1e-5)


@settings(max_examples=examples(60))
@given(g=random_graphs())
def test_simplify_never_adds_nodes_to_random_graphs(g):
    s = gc.simplify(g)
    assert len(s.nodes) <= len(g.nodes), f"{gc.to_text(g)}\nbecame\n{gc.to_text(s)}"


@settings(max_examples=examples(30))
@given(g=random_graphs())
def test_simplify_is_idempotent_on_random_graphs(g):
    s = gc.simplify(g)
    assert gc.to_text(gc.simplify(s)) == gc.to_text(s)


@st.composite
def constant_pieces(draw):
    """A graph concatenating/padding/selecting constants: splats (a scalar broadcast), dense
    arrays and slices of them, so folding meets every mix of known values."""
    g = gc.Graph("consts")
    x = g.input("x", (2, 6), "float64")
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        width = draw(st.integers(1, 3))
        kind = draw(st.sampled_from(["splat", "dense", "sliced", "input"]))
        value = float(draw(st.integers(-3, 3)))
        if kind == "splat":
            pieces.append(gc.broadcast_to(g.const(value, "float64"), (2, width)))
        elif kind == "dense":
            pieces.append(g.const(np.arange(2.0 * width).reshape(2, width) + value))
        elif kind == "sliced":
            pieces.append(g.const(np.full((2, 2 * width), value))[:, ::2])
        else:
            pieces.append(x[:, :width])
    joined = gc.concat(pieces, axis=1)
    total = joined.shape[1]
    g.output("joined", joined * 2.0 + 1.0)
    g.output("padded", gc.pad(joined, [0, 1], [1, 0]))
    g.output("picked", gc.take_along_axis(joined, g.const(np.zeros((2, 1), np.int64) + total - 1), axis=1))
    g.output("chosen", gc.where(joined > 0.0, joined, gc.broadcast_to(g.const(-1.0, "float64"), joined.shape)))
    return g


@settings(max_examples=examples(40))
@given(g=constant_pieces(), seed=st.integers(0, 2**16))
def test_simplify_preserves_expressions_of_constants(g, seed):
    note(gc.to_text(g))
    s = simplified(g)
    note(gc.to_text(s))
    args = random_arguments(g, seed)
    assert_same_values(gc.evaluate(s, **args), gc.evaluate(g, **args))


def test_sum_over_some_unit_axes_does_not_grow_the_graph():
    g, x = graph_x((3, 1, 4))
    g.output("s", gc.sum(x, axis=(1, 2)))
    s = simplified(g)
    assert len(s.nodes) <= len(g.nodes), gc.to_text(s)
    xs = RNG.standard_normal((3, 1, 4))
    assert_same_values(gc.evaluate(s, x=xs), gc.evaluate(g, x=xs))


def test_canonical_splat_does_not_grow_the_graph():
    g = gc.Graph("splat")
    c = g.const(np.array([1, 1]))
    g.output("c", c)
    g.output("b", gc.broadcast_to(c, (3, 2)))
    s = simplified(g)
    assert len(s.nodes) <= len(g.nodes), gc.to_text(s)
    assert_same_outputs(gc.evaluate(s), gc.evaluate(g))


def test_an_op_on_a_small_uniform_constant_folds_to_one_constant_not_a_splat():
    """Found by the random-graph test: neg of const [inf] became a scalar const and a broadcast,
    two nodes for one."""
    g = gc.Graph("graph")
    c = g.const(np.array([np.inf], np.float32))
    g.output("graph", c)
    g.output("graph_1", -c)
    s = gc.simplify(g)
    assert len(s.nodes) <= len(g.nodes)
    assert gc.evaluate(s)["graph_1"].tolist() == [-np.inf]
