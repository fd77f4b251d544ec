"""The verifier: builder-made graphs pass; graphs corrupted by hand are rejected with a
GraphError that names the faulty node."""

import numpy as np
import pytest

import graphc as gc
from graphc import examples
from graphc.ir.graph import Value
from graphs import relu_classifier

# ---------------------------------------------------------------- graphs that must pass


def small_two_layer():
    """The two-layer net, small. Its nodes:
    %0 x, %1 y, %2 w1, %3 w2, %4 matmul, %5 sigmoid, %6 matmul, %7 sub, %8 const 2,
    %9 broadcast_to, %10 pow, %11 sum; output loss = %11."""
    return examples.two_layer(n=4, d_in=5, hidden=3, d_out=2)


def _mlp_classifier():
    g, h, labels, w = relu_classifier()
    g.output("loss", gc.cross_entropy(h, labels) + gc.l2_regularization(w, 0.1))
    g.output("probs", gc.softmax(h))
    g.output("pred", gc.argmax(h, axis=1))
    return g


def _layout_ops():
    g = gc.Graph("layout")
    x = g.input("x", (2, 3, 4))
    y = g.input("y", (2, 4, 5), "float64")
    z = x.astype("float64") @ y  # batched matmul with a cast
    t = z.transpose(0, 2, 1).reshape(2, -1)
    c = gc.concat([t[:, ::2], t[:, 1::2]], axis=1)
    g.output("c", c)
    g.output("m", gc.mean(c, axis=0, keepdims=True))
    g.output("w", gc.where(c > 0.0, c, -c))
    g.output("s", x[0, 1:, ::-1])
    return g


def _int_and_bool():
    g = gc.Graph("ints")
    a = g.input("a", (3,), "int32")
    b = g.input("b", (3,), "int32")
    flags = g.input("flags", (3,), "bool")
    g.output("sum", a + b * 2)
    g.output("cmp", (a < b) == flags)
    g.output("hot", gc.one_hot(a, 5))
    g.output("pick", gc.take_along_axis(gc.one_hot(b, 4), gc.reshape(gc.cast(a, "int64"), (3, 1)), 1))
    g.output("top", gc.max(gc.cast(a, "float32") + 1.5))
    return g


def _composites():
    g = gc.Graph("composites")
    x = g.input("x", (4, 8))
    gamma = g.param("gamma", (8,))
    beta = g.param("beta", (8,))
    h = gc.layer_norm(x, gamma, beta)
    g.output("gelu", gc.gelu(h))
    g.output("lse", gc.logsumexp(h, axis=1))
    g.output("ls", gc.log_softmax(h))
    g.output("sp", gc.softplus(gc.tanh(h)) * gc.erf(h) + gc.log1p(gc.square(h)))
    return g


def _round_tripped():
    return gc.from_text(gc.to_text(_mlp_classifier()))


def _from_json():
    return gc.from_json(gc.to_json(_layout_ops()))


def _empty():
    return gc.Graph("empty")


def _constant_only():
    g = gc.Graph("consts")
    c = g.const(np.arange(6, dtype=np.float64).reshape(2, 3))
    g.output("c", c)
    g.output("c_again", c)
    return g


BUILDERS = {
    "two_layer_demo_size": examples.two_layer,
    "two_layer_small": small_two_layer,
    "mlp_classifier": _mlp_classifier,
    "layout_ops": _layout_ops,
    "int_and_bool": _int_and_bool,
    "composites": _composites,
    "text_round_trip": _round_tripped,
    "json_round_trip": _from_json,
    "empty": _empty,
    "constant_only": _constant_only,
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_builder_graphs_verify(build):
    g = build()
    before = gc.to_text(g)
    assert gc.verify(g) is None
    assert gc.to_text(g) == before, "verify must not change the graph"


def test_verify_accepts_a_graph_extended_after_a_first_verify():
    g = small_two_layer()
    gc.verify(g)
    extra = g.input("extra", (4, 2))
    g.output("diff", g.outputs["loss"] + gc.sum(extra))
    gc.verify(g)


# ---------------------------------------------------------------- helpers


def rejected(g, *fragments) -> str:
    """Assert verify(g) raises a GraphError whose message contains every fragment; return it."""
    with pytest.raises(gc.GraphError) as info:
        gc.verify(g)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in verifier message {msg!r}"
    return msg


@pytest.fixture
def g():
    g = small_two_layer()
    gc.verify(g)  # sanity: clean before each corruption
    return g


# ---------------------------------------------------------------- cycles and order


def test_two_node_cycle(g):
    # %4 (matmul) now uses %5 (sigmoid), which uses %4
    g.nodes[4].inputs = (g.nodes[5], g.nodes[2])
    msg = rejected(g, "cycle", "%4", "%5")
    assert "%0" not in msg.split("cycle", 1)[1], msg  # the cycle names only its members


def test_three_node_cycle(g):
    # %5 -> %6 -> %7 -> %5
    g.nodes[5].inputs = (g.nodes[7],)
    rejected(g, "cycle", "%5", "%6", "%7")


def test_self_loop(g):
    g.nodes[5].inputs = (g.nodes[5],)
    rejected(g, "cycle", "%5")


def test_out_of_order_without_cycle(g):
    # %5 (sigmoid) uses %9 (broadcast_to of a const): no cycle, but not topological either
    g.nodes[5].inputs = (g.nodes[9],)
    g.nodes[5].shape = (4, 2)
    msg = rejected(g, "%5")
    assert "cycle" not in msg


def test_swapped_nodes_are_out_of_order(g):
    a, b = g.nodes[4], g.nodes[5]  # b = sigmoid(a)
    g.nodes[4], g.nodes[5] = b, a
    a.id, b.id = 5, 4
    rejected(g, "%4")


# ---------------------------------------------------------------- dangling operands


def test_operand_from_another_graph(g):
    other = small_two_layer()
    g.nodes[5].inputs = (other.nodes[4],)
    rejected(g, "%5", "dangling")


def test_operand_not_in_graph_nodes_same_id(g):
    # a look-alike of %4: same graph, same id, same everything, but not the node at position 4
    a = g.nodes[4]
    twin = Value(g, a.id, a.op, a.inputs, dict(a.attrs), a.shape, a.dtype)
    g.nodes[5].inputs = (twin,)
    rejected(g, "%5", "%4")


def test_operand_not_in_graph_nodes_past_the_end(g):
    orphan = Value(g, 99, "exp", (g.nodes[4],), {}, (4, 3), "float32")
    g.nodes[5].inputs = (orphan,)
    rejected(g, "%5", "%99")


def test_operand_that_is_not_a_value(g):
    # a pass that put an id instead of a Value into inputs: still a GraphError, not AttributeError
    g.nodes[5].inputs = (4,)
    rejected(g, "%5")


# ---------------------------------------------------------------- unknown ops and arity


def test_unknown_op(g):
    g.nodes[5].op = "frobnicate"
    rejected(g, "%5", "frobnicate")


@pytest.mark.parametrize("position", [0, 2, 4, 8, 11])
def test_unknown_op_anywhere(g, position):
    g.nodes[position].op = "frobnicate"
    rejected(g, f"%{position}", "frobnicate")


def test_unary_op_with_two_operands(g):
    g.nodes[5].inputs = (g.nodes[4], g.nodes[4])
    rejected(g, "%5", "expected 1", "got 2")


def test_binary_op_with_one_operand(g):
    g.nodes[4].inputs = (g.nodes[0],)
    rejected(g, "%4", "expected 2", "got 1")


def test_ternary_op_with_two_operands():
    g = gc.Graph("w")
    x = g.input("x", (3,))
    w = gc.where(x > 0.0, x, -x)
    g.output("w", w)
    gc.verify(g)
    w.inputs = w.inputs[1:]
    rejected(g, f"%{w.id}", "expected 3", "got 2")


def test_concat_with_no_operands():
    g = gc.Graph("c")
    x = g.input("x", (3,))
    c = gc.concat([x, x])
    g.output("c", c)
    gc.verify(g)
    c.inputs = ()
    rejected(g, f"%{c.id}", "at least 1", "got 0")


def test_source_op_with_an_operand(g):
    # a param takes no operands: the message must say 0 were expected
    g.nodes[2].inputs = (g.nodes[0],)
    rejected(g, "%2", "expected 0", "got 1")


# ---------------------------------------------------------------- attributes


def test_attribute_of_wrong_type(g):
    g.nodes[11].attrs = {"axes": "01", "keepdims": False}
    rejected(g, "%11", "axes")


def test_bool_attribute_given_an_int(g):
    g.nodes[11].attrs = {"axes": (0, 1), "keepdims": 1}
    rejected(g, "%11", "keepdims")


def test_missing_attribute(g):
    g.nodes[11].attrs = {"axes": (0, 1)}
    rejected(g, "%11", "keepdims")


def test_extra_attribute(g):
    g.nodes[11].attrs = {"axes": (0, 1), "keepdims": False, "colour": "red"}
    rejected(g, "%11", "colour")


def test_attribute_on_op_without_attributes(g):
    g.nodes[5].attrs = {"slope": 2}
    rejected(g, "%5", "slope")


def test_attribute_value_out_of_range(g):
    g.nodes[11].attrs = {"axes": (0, 5), "keepdims": False}
    rejected(g, "%11")


def test_broadcast_attribute_that_cannot_broadcast():
    g = gc.Graph("b")
    x = g.input("x", (3,))
    y = g.input("y", (2, 3))
    s = x + y
    g.output("s", s)
    (bx, _) = s.inputs
    assert bx.op == "broadcast_to"
    gc.verify(g)
    bx.attrs = {"shape": (2, 4)}  # (3,) cannot broadcast to (2, 4)
    bx.shape = (2, 4)
    rejected(g, f"%{bx.id}")


def test_bad_dtype_attribute():
    g = gc.Graph("c")
    x = g.input("x", (3,))
    c = gc.cast(x, "float64")
    g.output("c", c)
    gc.verify(g)
    c.attrs = {"dtype": "complex64"}
    rejected(g, f"%{c.id}", "complex64")


def test_invalid_input_name_attribute(g):
    g.nodes[0].attrs = {"name": "not a name", "shape": (4, 5), "dtype": "float32"}
    rejected(g, "%0")


@pytest.mark.parametrize("attrs", [None, [("axes", (0, 1)), ("keepdims", False)]], ids=["None", "list"])
def test_attrs_that_are_not_a_dict(g, attrs):
    # a pass that built a Value by hand with the wrong kind of attrs: GraphError, not TypeError
    g.nodes[11].attrs = attrs
    rejected(g, "%11")


def test_const_value_that_is_not_an_array(g):
    g.nodes[8].attrs = {"value": 2.0}
    rejected(g, "%8", "value")


# ---------------------------------------------------------------- recorded shapes and dtypes


def test_recorded_shape_differs_from_rule(g):
    g.nodes[5].shape = (7,)
    rejected(g, "%5", "7")


def test_recorded_dtype_differs_from_rule(g):
    g.nodes[5].dtype = "float64"
    rejected(g, "%5", "float64")


@pytest.mark.parametrize("position", range(12))
def test_wrong_shape_is_caught_at_every_node(g, position):
    g.nodes[position].shape = (7,)
    rejected(g, f"%{position}")


def test_input_whose_type_disagrees_with_its_attributes(g):
    g.nodes[0].shape = (5, 4)  # attrs still say (4, 5)
    rejected(g, "%0")


def test_consistently_retyped_input_breaks_its_user(g):
    # x is now consistently (4, 6): x itself is fine, but matmul %4 (x @ w1) no longer fits
    x = g.nodes[0]
    x.attrs = {"name": "x", "shape": (4, 6), "dtype": "float32"}
    x.shape = (4, 6)
    rejected(g, "%4")


def test_const_whose_recorded_dtype_differs(g):
    g.nodes[8].dtype = "float64"
    rejected(g, "%8")


def test_elementwise_operands_of_different_dtypes(g):
    # sub %6 %1 where %1 is now consistently float64
    y = g.nodes[1]
    y.attrs = {"name": "y", "shape": (4, 2), "dtype": "float64"}
    y.dtype = "float64"
    rejected(g, "%7")


# ---------------------------------------------------------------- ids and positions


def test_id_differs_from_position(g):
    g.nodes[5].id = 6
    rejected(g, "position 5")


def test_node_of_another_graph_in_nodes(g):
    other = small_two_layer()
    g.nodes[5] = other.nodes[5]
    rejected(g, "%5")


def test_same_node_listed_twice(g):
    g.nodes.append(g.nodes[5])
    rejected(g, "position 12")


def test_node_removed_from_the_middle(g):
    del g.nodes[6]  # ids after the hole no longer match their positions
    rejected(g, "position 6")


# ---------------------------------------------------------------- names


def test_duplicate_input_names(g):
    g.nodes[1].attrs["name"] = "x"
    rejected(g, "%1", "duplicate", "'x'")


def test_input_and_param_with_the_same_name(g):
    g.nodes[2].attrs["name"] = "y"
    rejected(g, "%2", "duplicate", "'y'")


def test_renamed_input_no_longer_matches_the_table(g):
    g.nodes[1].attrs["name"] = "z"
    rejected(g)


def test_invalid_graph_name(g):
    g.name = "two layer"
    rejected(g, "two layer")


# ---------------------------------------------------------------- outputs


def test_output_from_another_graph(g):
    other = small_two_layer()
    g.outputs["stray"] = other.nodes[11]
    rejected(g, "stray")


def test_output_that_is_a_look_alike(g):
    a = g.nodes[11]
    g.outputs["twin"] = Value(g, a.id, a.op, a.inputs, dict(a.attrs), a.shape, a.dtype)
    rejected(g, "twin")


def test_output_not_in_graph_nodes(g):
    # a value that claims this graph but was never appended: GraphError, not IndexError
    g.outputs["orphan"] = Value(g, 99, "exp", (g.nodes[4],), {}, (4, 3), "float32")
    rejected(g, "orphan")


@pytest.mark.parametrize("junk", [3, None, np.zeros(3), "loss"], ids=["int", "None", "array", "str"])
def test_output_that_is_not_a_value(g, junk):
    g.outputs["junk"] = junk
    rejected(g, "junk")


def test_invalid_output_name(g):
    g.outputs["1st"] = g.nodes[11]
    rejected(g, "1st")


def test_errors_are_graphc_errors_and_value_errors(g):
    g.nodes[5].op = "frobnicate"
    with pytest.raises(gc.GraphcError):
        gc.verify(g)
    with pytest.raises(ValueError):
        gc.verify(g)
