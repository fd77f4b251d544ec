"""The builder: dtype promotion, explicit broadcasting, build-time errors, Value operators and the
Graph's name -> value mappings. Expected values come from numpy or hand arithmetic."""

import numpy as np
import pytest

import graphc as gc
from graphc import examples

ELEMENTWISE = {name for name, op in gc.OPS.items() if op.kind == "elementwise"}


def graph_with(*specs):
    """A graph and one input per (name, shape, dtype)."""
    g = gc.Graph("t")
    return g, [g.input(n, s, d) for n, s, d in specs]


def ev(g, value, **arrays):
    if "out" not in g.outputs:
        g.output("out", value)
    return gc.evaluate(g, **arrays)["out"]


# ---------------------------------------------------------------- dtype promotion


@pytest.mark.parametrize("da,db,expected", [
    ("int32", "int64", "int64"), ("int32", "float32", "float32"), ("int64", "float32", "float32"),
    ("float32", "float64", "float64"), ("bool", "int32", "int32"), ("bool", "float64", "float64"),
    ("float32", "float32", "float32"), ("int64", "int32", "int64"), ("float64", "int32", "float64"),
])
def test_value_value_promotion(da, db, expected):
    g, (a, b) = graph_with(("a", (3,), da), ("b", (3,), db))
    out = a + b
    assert out.dtype == expected
    assert any(v.op == "cast" for v in g.nodes) == (da != db)
    A, B = np.array([1, 0, 2]).astype(da), np.array([3, 1, 0]).astype(db)
    r = ev(g, out, a=A, b=B)
    assert r.dtype == np.dtype(expected)
    np.testing.assert_array_equal(r, A.astype(expected) + B.astype(expected))


@pytest.mark.parametrize("dtype,make,expected", [
    ("float32", lambda v: v * 2, "float32"),
    ("float32", lambda v: 2 * v, "float32"),
    ("float32", lambda v: v * 2.5, "float32"),
    ("float64", lambda v: v + 1, "float64"),
    ("float64", lambda v: v + 0.1, "float64"),
    ("int32", lambda v: v + 1, "int32"),
    ("int32", lambda v: 3 - v, "int32"),
    ("int32", lambda v: v + 1.5, "float32"),
    ("int64", lambda v: v * 0.5, "float32"),
    ("bool", lambda v: v + 1, "int64"),
    ("bool", lambda v: 1 + v, "int64"),
    ("bool", lambda v: v * 1.5, "float32"),
    ("int32", lambda v: v + True, "int32"),
    ("float32", lambda v: v > 1, "bool"),
    ("int32", lambda v: v < 1.5, "bool"),
    ("float32", lambda v: v ** 2, "float32"),
    ("int32", lambda v: v ** 2, "int32"),
])
def test_python_scalars_are_weak(dtype, make, expected):
    g, (x,) = graph_with(("x", (4,), dtype))
    out = make(x)
    assert out.dtype == expected
    X = np.array([0, 1, 2, 3]).astype(dtype)
    r = ev(g, out, x=X)
    assert r.dtype == np.dtype(expected)
    # numpy on the same values, in a wide type, then rounded to the expected type
    wide = make(X.astype(np.float64))
    np.testing.assert_array_equal(r, np.asarray(wide).astype(expected))


def test_int32_plus_float_scalar_by_hand():
    g, (x,) = graph_with(("x", (3,), "int32"))
    r = ev(g, x + 1.5, x=np.array([1, -2, 3], np.int32))
    assert r.dtype == np.float32 and r.tolist() == [2.5, -0.5, 4.5]


def test_weak_float_scalar_keeps_float32_rounding():
    # 0.1 must become float32(0.1), not float64(0.1) rounded after the add
    g, (x,) = graph_with(("x", (1,), "float32"))
    r = ev(g, x + 0.1, x=np.array([1.0], np.float32))
    assert r.dtype == np.float32 and r[0] == np.float32(1.0) + np.float32(0.1)


@pytest.mark.parametrize("dtype,array,expected", [
    ("float32", np.array([1.0, 2.0, 3.0]), "float64"),
    ("float32", np.array(2.0), "float64"),
    ("int32", np.array([1, 2, 3], np.int64), "int64"),
    ("float32", np.array([1, 2, 3], np.int32), "float32"),
    ("int32", np.array([1.5, 2.5, 3.5], np.float32), "float32"),
    ("float64", np.array([1, 2, 3], np.float32), "float64"),
    ("bool", np.array([1, 0, 2], np.int32), "int32"),
])
def test_numpy_arrays_keep_their_dtype(dtype, array, expected):
    g, (x,) = graph_with(("x", (3,), dtype))
    out = gc.maximum(x, array)
    assert out.dtype == expected
    assert out.shape == (3,)
    consts = [v for v in g.nodes if v.op == "const"]
    assert consts and consts[0].dtype == array.dtype.name
    X = np.array([2, 0, 1]).astype(dtype)
    r = ev(g, out, x=X)
    np.testing.assert_array_equal(r, np.maximum(X.astype(expected), array.astype(expected)))
    assert r.dtype == np.dtype(expected)


def test_numpy_array_on_the_left_defers_to_value():
    g, (x,) = graph_with(("x", (2, 3), "float32"))
    a = np.array([1.0, 2.0, 3.0], np.float64)
    out = a + x
    assert isinstance(out, gc.Value) and out.dtype == "float64" and out.shape == (2, 3)
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(ev(g, out, x=X), a + X.astype(np.float64))


def test_mean_of_ints_gives_default_float():
    g, (x,) = graph_with(("x", (4,), "int32"))
    out = gc.mean(x)
    assert out.dtype == "float32"
    assert ev(g, out, x=np.array([1, 2, 3, 5], np.int32)) == np.float32(2.75)


# ---------------------------------------------------------------- explicit broadcasting


def _assert_explicit(g):
    """Every elementwise node's operands have equal shapes (and the output that shape too)."""
    n = 0
    for v in g.nodes:
        if v.op in ELEMENTWISE:
            n += 1
            shapes = {i.shape for i in v.inputs}
            assert shapes == {v.shape}, (v.op, [i.shape for i in v.inputs], v.shape)
            if v.op not in ("where", "cast"):
                assert len({i.dtype for i in v.inputs}) == 1, (v.op, [i.dtype for i in v.inputs])
            if v.op == "where":
                assert v.inputs[0].dtype == "bool" and v.inputs[1].dtype == v.inputs[2].dtype
    assert n


def test_broadcast_to_nodes_are_inserted_and_shapes_are_explicit():
    g, (a, b, c, s) = graph_with(("a", (3, 1), "float32"), ("b", (4,), "int32"),
                                 ("c", (2, 1, 1), "float64"), ("s", (), "float32"))
    out = (a + b) * 2 - c / s
    out = gc.where(b > 0, out, a) + np.ones((1, 4), np.float32)
    out = gc.maximum(out, 0.0) + gc.minimum(s, a)
    assert out.shape == (2, 3, 4) and out.dtype == "float64"
    bcast = [v for v in g.nodes if v.op == "broadcast_to"]
    assert len(bcast) >= 4
    for v in bcast:
        assert len(v.inputs[0].shape) <= len(v.shape)
    _assert_explicit(g)
    rng = np.random.default_rng(0)
    A, B, C = rng.normal(size=(3, 1)).astype(np.float32), np.array([-1, 0, 2, 3], np.int32), rng.normal(size=(2, 1, 1))
    S = np.float32(1.5)
    r = ev(g, out, a=A, b=B, c=C, s=S)
    A64, S64 = A.astype(np.float64), np.float64(S)
    e = (A.astype(np.float32) + B.astype(np.float32)).astype(np.float64) * 2 - C / S64
    e = np.where(B > 0, e, A64) + 1.0
    e = np.maximum(e, 0.0) + np.minimum(S64, A64)
    np.testing.assert_allclose(r, e, rtol=1e-6)


def test_no_broadcast_node_when_shapes_already_match():
    g, (a, b) = graph_with(("a", (3, 4), "float32"), ("b", (3, 4), "float32"))
    a + b
    assert not any(v.op in ("broadcast_to", "cast") for v in g.nodes)


def test_explicit_shapes_in_composites_and_matmul():
    g, (x, w, b, y) = graph_with(("x", (4, 3), "float32"), ("w", (3, 5), "float32"), ("b", (5,), "float32"),
                                 ("y", (4,), "int64"))
    h = gc.layer_norm(gc.gelu(gc.linear(x, w, b)), b, b)
    g.output("loss", gc.cross_entropy(h, y) + gc.svm_loss(h, y) + gc.l2_regularization(w, 0.1)
             + gc.mse(h, gc.softmax(h)) + gc.logsumexp(h))
    _assert_explicit(g)
    mm = [v for v in g.nodes if v.op == "matmul"]
    assert mm and all(v.inputs[0].shape[:-2] == v.inputs[1].shape[:-2] for v in mm)


def test_batched_matmul_broadcast_is_explicit():
    g, (a, b) = graph_with(("a", (2, 1, 3, 4), "float32"), ("b", (5, 4, 6), "float32"))
    out = a @ b
    assert out.shape == (2, 5, 3, 6)
    (mm,) = [v for v in g.nodes if v.op == "matmul"]
    assert mm.inputs[0].shape == (2, 5, 3, 4) and mm.inputs[1].shape == (2, 5, 4, 6)


# ---------------------------------------------------------------- build-time errors


@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3, 4), (3, 5, 6)), ((5,), (4, 2)),
                                   ((2, 3, 4), (3, 4, 5))], ids=str)
def test_matmul_shape_error_at_build_time_names_op_and_shapes(sa, sb):
    g, (a, b) = graph_with(("a", sa, "float32"), ("b", sb, "float32"))
    with pytest.raises(gc.ShapeError) as e:
        a @ b
    msg = str(e.value)
    assert "matmul" in msg and str(sa) in msg and str(sb) in msg


def test_matmul_of_a_scalar_is_shape_error():
    g, (a, b) = graph_with(("a", (), "float32"), ("b", (3,), "float32"))
    with pytest.raises(gc.ShapeError, match="matmul"):
        a @ b


@pytest.mark.parametrize("op,fn", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                                   ("mul", lambda a, b: a * b), ("lt", lambda a, b: a < b),
                                   ("maximum", gc.maximum)])
@pytest.mark.parametrize("sa,sb", [((2, 3), (4,)), ((3, 2), (2, 3)), ((0,), (2,))])
def test_elementwise_shape_error_at_build_time_names_op_and_shapes(op, fn, sa, sb):
    g, (a, b) = graph_with(("a", sa, "float32"), ("b", sb, "float32"))
    with pytest.raises(gc.ShapeError) as e:
        fn(a, b)
    msg = str(e.value)
    assert op in msg and str(sa) in msg and str(sb) in msg


def test_where_shape_error():
    g, (c, a, b) = graph_with(("c", (3,), "bool"), ("a", (4,), "float32"), ("b", (4,), "float32"))
    with pytest.raises(gc.ShapeError, match="where"):
        gc.where(c, a, b)


@pytest.mark.parametrize("fn_name", ["exp", "log", "sqrt", "tanh", "sigmoid", "erf"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_transcendental_of_int_is_dtype_error(fn_name, dtype):
    g, (x,) = graph_with(("x", (3,), dtype))
    with pytest.raises(gc.DTypeError, match=fn_name):
        getattr(gc, fn_name)(x)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_div_of_ints_is_dtype_error(dtype):
    g, (a, b) = graph_with(("a", (3,), dtype), ("b", (3,), dtype))
    with pytest.raises(gc.DTypeError, match="div"):
        a / b
    with pytest.raises(gc.DTypeError, match="div"):
        a / 2


@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_where_with_non_bool_condition_is_dtype_error(dtype):
    g, (c, a, b) = graph_with(("c", (3,), dtype), ("a", (3,), "float32"), ("b", (3,), "float32"))
    with pytest.raises(gc.DTypeError, match="where"):
        gc.where(c, a, b)


def test_where_with_python_scalar_branches():
    g, (x,) = graph_with(("x", (4,), "float32"))
    X = np.array([-1.0, 0.0, 2.0, -3.0], np.float32)
    r = ev(g, gc.where(x > 0, 1.0, 0.0), x=X)
    np.testing.assert_array_equal(r, np.where(X > 0, 1.0, 0.0))
    assert r.dtype == np.float32


def test_where_with_one_scalar_branch():
    g, (x,) = graph_with(("x", (4,), "float32"))
    X = np.array([-1.0, 0.0, 2.0, -3.0], np.float32)
    r = ev(g, gc.where(x > 0, x, 0.0), x=X)
    np.testing.assert_array_equal(r, np.where(X > 0, X, 0.0).astype(np.float32))
    assert r.dtype == np.float32


def test_other_dtype_errors():
    g, (i, b, f) = graph_with(("i", (3,), "int32"), ("b", (3,), "bool"), ("f", (3,), "float32"))
    with pytest.raises(gc.DTypeError):
        -b
    with pytest.raises(gc.DTypeError):
        gc.sum(b)
    with pytest.raises(gc.DTypeError):
        gc.one_hot(f, 3)
    with pytest.raises(gc.DTypeError):
        gc.take_along_axis(f, f, axis=0)
    with pytest.raises(gc.DTypeError):
        gc.cross_entropy(f[None], gc.cast(f, "float64")[:1])
    with pytest.raises(gc.DTypeError):
        gc.cast(f, "float16")


@pytest.mark.parametrize("index", [3, -4, (0, -6), (0, 5), (0, 0, 0), 1.5, "a", [0, 1], True, (Ellipsis, Ellipsis)],
                         ids=repr)
def test_indexing_errors_are_shape_errors(index):
    g, (x,) = graph_with(("x", (3, 5), "float32"))
    with pytest.raises(gc.ShapeError):
        x[index]


def test_out_of_range_index_message_names_the_axis_and_size():
    g, (x,) = graph_with(("x", (3, 5), "float32"))
    with pytest.raises(gc.ShapeError, match="5"):
        x[0, 7]


def test_mixing_two_graphs_is_graph_error():
    g1, (a,) = graph_with(("a", (3,), "float32"))
    g2, (b,) = graph_with(("b", (3,), "float32"))
    for fn in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: gc.maximum(a, b), lambda: a < b,
               lambda: gc.concat([a, b]), lambda: gc.where(a > 0, b, a),
               lambda: gc.take_along_axis(a, gc.cast(b, "int64"), 0)):
        with pytest.raises(gc.GraphError):
            fn()
    with pytest.raises(gc.GraphError):
        g2.output("o", a)


@pytest.mark.parametrize("use", [bool, lambda v: 1 if v else 0, lambda v: not v, lambda v: v and v])
def test_truth_value_of_a_value_is_graph_error(use):
    g, (x,) = graph_with(("x", (), "float32"))
    with pytest.raises(gc.GraphError):
        use(x)
    with pytest.raises(gc.GraphError):
        use(x == x)


def test_errors_are_value_errors():
    for cls in (gc.ShapeError, gc.DTypeError, gc.GraphError, gc.DataError, gc.CompileError):
        assert issubclass(cls, gc.GraphcError) and issubclass(cls, ValueError)


# ---------------------------------------------------------------- Value operators


def test_value_operator_overloads_match_numpy():
    rng = np.random.default_rng(1)
    A = rng.uniform(0.5, 2.0, (3, 4))
    B = rng.uniform(0.5, 2.0, (3, 4))
    W = rng.normal(size=(4, 2))
    B[0, 0] = A[0, 0]  # a tie, so == and != are not trivially all-false / all-true
    g = gc.Graph("ops")
    a, b, w = g.input("a", (3, 4), "float64"), g.input("b", (3, 4), "float64"), g.input("w", (4, 2), "float64")
    outs = {
        "add": (a + b, A + B), "sub": (a - b, A - B), "mul": (a * b, A * B), "div": (a / b, A / B),
        "pow": (a ** b, A ** B), "matmul": (a @ w, A @ W), "neg": (-a, -A), "pos": (+a, A),
        "abs": (abs(a - b), np.abs(A - B)),
        "lt": (a < b, A < B), "le": (a <= b, A <= B), "gt": (a > b, A > B), "ge": (a >= b, A >= B),
        "eq": (a == b, A == B), "ne": (a != b, A != B),
        "T": (a.T, A.T), "sum": (a.sum(), A.sum()), "sum1": (a.sum(axis=1), A.sum(axis=1)),
        "sumk": (a.sum(0, keepdims=True), A.sum(0, keepdims=True)),
        "mean": (a.mean(), A.mean()), "mean0": (a.mean(axis=0), A.mean(axis=0)),
        "max": (a.max(), A.max()), "max1": (a.max(axis=-1, keepdims=True), A.max(axis=-1, keepdims=True)),
        "min": (a.min(), A.min()), "min0": (a.min(axis=0), A.min(axis=0)),
        "reshape": (a.reshape(4, 3), A.reshape(4, 3)), "reshape_t": (a.reshape((2, -1)), A.reshape((2, -1))),
        "reshape_i": (a.reshape(-1), A.reshape(-1)),
        "transpose": (a.transpose(), A.transpose()), "transpose_a": (a.transpose(1, 0), A.transpose(1, 0)),
        "transpose_t": (a.transpose((1, 0)), A.transpose((1, 0))),
        "astype": (a.astype("int32"), A.astype(np.int32)), "astype_np": (a.astype(np.float32), A.astype(np.float32)),
        "radd": (1 + a, 1 + A), "rsub": (1 - a, 1 - A), "rmul": (2 * a, 2 * A), "rdiv": (1 / a, 1 / A),
        "rpow": (2 ** a, 2 ** A), "rmatmul": (A.T @ a, A.T @ A),
    }
    for name, (v, _) in outs.items():
        g.output(name, v)
    r = gc.evaluate(g, a=A, b=B, w=W)
    for name, (_, expected) in outs.items():
        expected = np.asarray(expected)
        assert r[name].shape == expected.shape, name
        assert r[name].dtype == expected.dtype, name
        if expected.dtype.kind in "bi":
            np.testing.assert_array_equal(r[name], expected, err_msg=name)
        else:
            np.testing.assert_allclose(r[name], expected, rtol=1e-13, err_msg=name)
    assert r["eq"][0, 0] and not r["ne"][0, 0]


def test_comparison_operators_build_nodes_not_bools():
    g, (a, b) = graph_with(("a", (2,), "float32"), ("b", (2,), "float32"))
    for v, op in ((a == b, "eq"), (a != b, "ne"), (a < b, "lt"), (a <= b, "le"), (a > b, "gt"), (a >= b, "ge"),
                  (a == 1.0, "eq"), (2 != a, "ne")):
        assert isinstance(v, gc.Value) and v.op == op and v.dtype == "bool"


def test_values_are_usable_as_dict_keys_and_in_sets():
    g, (a, b) = graph_with(("a", (2,), "float32"), ("b", (2,), "float32"))
    c = a + b
    d = {a: "a", b: "b", c: "c"}
    assert d[a] == "a" and d[b] == "b" and d[c] == "c"
    assert a in d and c in d and len(d) == 3
    s = {a, b, a, c, c}
    assert len(s) == 3 and b in s
    assert hash(a) == hash(a) and {v: v.id for v in g.nodes}[c] == c.id


def test_len_and_iteration():
    g, (x,) = graph_with(("x", (3, 2), "float32"))
    assert len(x) == 3
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(ev(g, rows[2], x=X), X[2])


# ---------------------------------------------------------------- graphs: mappings, extension, names


def test_inputs_params_outputs_mappings():
    g = gc.Graph("m")
    x = g.input("x", (2, 3))
    w = g.param("w", (3, 4), "float64")
    y = g.input("y", (2,), "int64")
    b = g.param("b", (4,))
    out = x @ w
    g.output("out", out)
    g.output("also_x", x)
    assert g.inputs == {"x": x, "y": y} and list(g.inputs) == ["x", "y"]
    assert g.params == {"w": w, "b": b} and list(g.params) == ["w", "b"]
    assert g.outputs == {"out": out, "also_x": x}
    assert g.inputs["x"] is x and g.params["w"] is w and g.outputs["out"] is out
    assert x.name == "x" and w.name == "w" and out.name is None
    assert (x.shape, x.dtype, w.dtype, y.dtype) == ((2, 3), "float32", "float64", "int64")
    assert out.dtype == "float64" and out.shape == (2, 4)


def test_graph_extension_after_building_and_evaluating():
    g = gc.Graph("ext")
    x = g.input("x", (3,))
    g.output("double", x * 2)
    X = np.array([1.0, 2.0, 3.0], np.float32)
    assert gc.evaluate(g, x=X)["double"].tolist() == [2.0, 4.0, 6.0]
    z = g.input("z", (3,))
    g.output("prod", g.outputs["double"] * z)
    p = g.param("p", ())
    g.output("shifted", g.outputs["prod"] + p)
    r = gc.evaluate(g, x=X, z=np.array([1.0, -1.0, 0.5], np.float32), p=np.float32(10.0))
    assert r["double"].tolist() == [2.0, 4.0, 6.0]
    assert r["prod"].tolist() == [2.0, -4.0, 3.0]
    assert r["shifted"].tolist() == [12.0, 6.0, 13.0]
    assert set(r) == {"double", "prod", "shifted"}
    with pytest.raises(gc.GraphcError):  # the new inputs are now required
        gc.evaluate(g, x=X)


def test_duplicate_names_are_graph_errors():
    g = gc.Graph("d")
    x = g.input("x", (2,))
    with pytest.raises(gc.GraphError, match="x"):
        g.input("x", (2,))
    with pytest.raises(gc.GraphError, match="x"):
        g.param("x", (3,))
    g.param("w", (2,))
    with pytest.raises(gc.GraphError, match="w"):
        g.param("w", (2,))
    with pytest.raises(gc.GraphError, match="w"):
        g.input("w", (2,))
    g.output("o", x)
    with pytest.raises(gc.GraphError, match="o"):
        g.output("o", x + 1)
    assert list(g.inputs) == ["x"] and list(g.params) == ["w"] and list(g.outputs) == ["o"]


@pytest.mark.parametrize("name", ["1x", "a-b", "", "a b", "x.y", "é!", None, 3])
def test_invalid_names_are_graph_errors(name):
    g = gc.Graph("ok")
    with pytest.raises(gc.GraphError):
        g.input(name, (2,))
    with pytest.raises(gc.GraphError):
        g.param(name, (2,))
    x = g.input("x", (2,))
    with pytest.raises(gc.GraphError):
        g.output(name, x)
    with pytest.raises(gc.GraphError):
        gc.Graph(name)
    assert g.inputs == {"x": x} and g.params == {} and g.outputs == {}


@pytest.mark.parametrize("name", ["x", "_x", "X1", "a_b_2", "_"])
def test_valid_names(name):
    g = gc.Graph(name)
    v = g.input(name, (1,))
    g.output(name, v)
    assert gc.evaluate(g, **{name: np.array([3.0], np.float32)})[name].tolist() == [3.0]


def test_output_must_be_a_value():
    g = gc.Graph("t")
    with pytest.raises(gc.GraphError):
        g.output("o", np.zeros(3))


@pytest.mark.parametrize("shape,axis", [((3, 0), 1), ((0,), None), ((2, 0, 4), (0, 1)), ((0, 3), 0)])
def test_mean_over_empty_axis_is_shape_error(shape, axis):
    g, (x,) = graph_with(("x", shape, "float32"))
    with pytest.raises(gc.ShapeError, match="mean"):
        gc.mean(x, axis=axis)


def test_mean_over_nonempty_axis_of_empty_array_is_empty():
    g, (x,) = graph_with(("x", (3, 0), "float32"))
    r = ev(g, gc.mean(x, axis=0), x=np.zeros((3, 0), np.float32))
    assert r.shape == (0,) and r.dtype == np.float32


@pytest.mark.parametrize("fn", [gc.max, gc.min, gc.argmax, gc.argmin])
@pytest.mark.parametrize("shape,axis", [((3, 0), 1), ((0,), None), ((0, 3), 0), ((2, 0), -1)])
def test_max_over_zero_size_axis_is_shape_error(fn, shape, axis):
    g, (x,) = graph_with(("x", shape, "float32"))
    with pytest.raises(gc.ShapeError):
        fn(x, axis=axis)


@pytest.mark.parametrize("axis", [2, -3, (0, 0), (0, -2), 1.0])
def test_bad_reduction_axes_are_shape_errors(axis):
    g, (x,) = graph_with(("x", (2, 3), "float32"))
    with pytest.raises(gc.ShapeError):
        gc.sum(x, axis=axis)


def test_transpose_bad_axes_are_shape_errors():
    g, (x,) = graph_with(("x", (2, 3, 4), "float32"))
    for axes in ((0, 1), (0, 0, 1), (0, 1, 3), (0, 1, 2, 3)):
        with pytest.raises(gc.ShapeError):
            gc.transpose(x, axes)


def test_builder_functions_need_a_value():
    with pytest.raises(gc.GraphError):
        gc.add(1.0, 2.0)
    with pytest.raises(gc.GraphError):
        gc.exp(np.ones(3))


def test_input_shapes_are_checked():
    g = gc.Graph("t")
    with pytest.raises(gc.ShapeError):
        g.input("x", (-1, 2))
    for bad in ((2.5,), "ab", (True,), None):
        with pytest.raises(gc.GraphcError):
            g.input("x", bad)
    assert g.inputs == {}


def test_int_input_accepts_python_ints_and_rejects_floats_at_evaluate():
    g, (x,) = graph_with(("x", (2,), "int64"))
    g.output("y", x * 3)
    assert gc.evaluate(g, x=[1, 2])["y"].tolist() == [3, 6]
    with pytest.raises(gc.DTypeError, match="'x'"):
        gc.evaluate(g, x=np.array([1.0, 2.0]))
    with pytest.raises(gc.ShapeError, match="'x'"):
        gc.evaluate(g, x=np.array([1, 2, 3]))


def test_int64_chain_by_hand():
    g, (x,) = graph_with(("x", (2, 2), "int64"))
    out = ((x * x + 1) @ x).sum(axis=0) - x.max()
    X = np.array([[1, 2], [3, 4]])
    expected = ((X * X + 1) @ X).sum(axis=0) - 4
    r = ev(g, out, x=X)
    assert r.dtype == np.int64 and r.tolist() == expected.tolist() == [74, 108]


def test_select_keeps_only_the_named_outputs():
    """A train step without its grad_* outputs: a new graph, same signature, the old one untouched,
    and the compiled selection computes what the full graph computes for those outputs."""
    step = examples.sgd_step(gc.grad(examples.two_layer(n=4, d_in=5, hidden=3, d_out=2)), lr=0.1)
    lean = step.select("new_w2", "loss", name="lean")
    assert list(lean.outputs) == ["new_w2", "loss"] and lean.name == "lean"
    assert list(lean.arguments) == list(step.arguments) and "grad_w1" in step.outputs
    rng = np.random.default_rng(0)
    args = {n: rng.standard_normal(v.shape).astype(v.dtype) for n, v in step.arguments.items()}
    full = gc.evaluate(step, **args)
    got = gc.compile(lean)(**args)
    assert sorted(got) == ["loss", "new_w2"]
    for n in got:
        np.testing.assert_allclose(got[n], full[n], rtol=1e-5)
    assert gc.compile(lean).stats["n_values"] < gc.compile(step).stats["n_values"]
    for bad, why in (((), "name at least one output"), (("loss", "nope"), "no output named 'nope'"),
                     (("loss", "loss"), "an output is named twice")):
        with pytest.raises(gc.GraphError, match=why):
            step.select(*bad)
