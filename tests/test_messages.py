"""What a newcomer runs into first, and what graphc says or does: positional call arguments,
integer labels of another width, numpy scalars in graph arithmetic, ``gc.load`` on a text IR
file, ``grad(of=<Value>)`` and misspelt op names. Each refusal is a GraphcError naming the
input, op or output at fault."""

import numpy as np
import pytest

import compiled  # noqa: F401  (a private kernel cache)
import graphc as gc
from graphc import examples


def classifier():
    """Labels declared int32, as a graph might; scikit-learn hands over int64."""
    g = gc.Graph("clf")
    x = g.input("x", (4, 3))
    labels = g.input("labels", (4,), "int32")
    w = g.param("w", (3, 5))
    g.output("loss", gc.cross_entropy(x @ w, labels))
    return g


RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3)).astype(np.float32)
W = RNG.standard_normal((3, 5)).astype(np.float32)
LABELS = np.array([0, 4, 2, 1])  # int64


@pytest.fixture(scope="module")
def fn():
    return gc.compile(classifier())


# ---------------------------------------------------------------- arguments by name


def test_positional_arguments_are_refused_with_the_call_spelt_out(fn):
    with pytest.raises(gc.ArgumentError, match=r"by name.*fn\(x=\.\.\., labels=\.\.\., w=\.\.\.\)"):
        fn(X, LABELS, W)
    with pytest.raises(gc.ArgumentError, match=r"gc\.evaluate\(graph, x=\.\.\., labels=\.\.\., w=\.\.\.\)"):
        gc.evaluate(classifier(), X, LABELS, W)


def test_run_takes_a_dict(fn):
    with pytest.raises(gc.ArgumentError, match=r"dict of name -> array, got ndarray; it takes x, labels, w"):
        fn.run(X)


# ---------------------------------------------------------------- integer widths


def test_int64_labels_feed_an_int32_input_as_a_copy(fn):
    args = {"x": X, "labels": LABELS, "w": W}
    before = LABELS.copy()
    expected = gc.evaluate(classifier(), x=X, labels=LABELS.astype(np.int32), w=W)["loss"]
    assert gc.evaluate(classifier(), **args)["loss"] == expected
    assert fn(**args)["loss"] == pytest.approx(expected, rel=1e-6)
    assert LABELS.dtype == np.int64 and np.array_equal(LABELS, before)
    assert fn(x=X, labels=LABELS.astype(np.uint8), w=W)["loss"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bad", [2**31, -2**31 - 1])
def test_labels_out_of_int32_range_are_refused_not_wrapped(fn, bad):
    labels = LABELS.copy()
    labels[1] = bad
    for run in (lambda **a: gc.evaluate(classifier(), **a), fn):
        with pytest.raises(gc.DTypeError, match=rf"input 'labels': int64 value {bad} is out of range for int32 "
                                                r"\[-2147483648, 2147483647\]"):
            run(x=X, labels=labels, w=W)


def test_float64_for_float32_is_still_refused_and_says_how_to_cast(fn):
    """Floats must match: float64 -> float32 rounds, which is the caller's choice to make."""
    for run in (lambda **a: gc.evaluate(classifier(), **a), fn):
        with pytest.raises(gc.DTypeError, match=r"input 'x': expected dtype float32, got float64; "
                                                r".*astype\(np\.float32\)"):
            run(x=X.astype(np.float64), labels=LABELS, w=W)


# ---------------------------------------------------------------- numpy scalars in graph arithmetic


@pytest.mark.parametrize("scalar", [0.1, np.float64(0.1), np.float32(0.1), np.float16(0.5), np.int64(2)],
                         ids=["float", "float64", "float32", "float16", "int64"])
def test_numpy_scalars_are_weak_like_python_numbers(scalar):
    g = gc.Graph("sgd")
    w = g.param("w", (3,))
    grad = g.input("g", (3,))
    for v in (w - scalar * grad, w - grad * scalar, w * scalar):
        assert v.dtype == "float32", v
    labels = g.input("labels", (3,), "int32")
    assert (labels + np.int64(1)).dtype == "int32"
    assert (labels * np.float64(0.5)).dtype == "float32"  # a float meeting ints: the default float, as 0.5 gives


def test_an_sgd_step_with_a_numpy_learning_rate_keeps_the_params_dtypes():
    dg = gc.grad(examples.two_layer(n=2, d_in=3, hidden=2, d_out=1))
    step = examples.sgd_step(dg, np.float64(0.1))
    assert step.outputs["new_w1"].dtype == step.params["w1"].dtype == "float32"


def test_a_numpy_int_too_big_for_an_int32_value_is_refused():
    g = gc.Graph("i")
    i = g.input("i", (2,), "int32")
    with pytest.raises(gc.GraphError, match="1099511627776 out of bounds for int32"):
        i + np.int64(2**40)


def test_a_0d_array_keeps_its_dtype():
    g = gc.Graph("a")
    x = g.input("x", (2,))
    assert (x * np.array(0.5)).dtype == "float64"


# ---------------------------------------------------------------- gc.load on text IR


def test_load_reads_a_text_ir_file(tmp_path):
    g = examples.two_layer(n=2, d_in=3, hidden=2, d_out=1)
    (tmp_path / "g.ir").write_text("# written by hand\n" + gc.to_text(g))
    assert gc.to_text(gc.load(tmp_path / "g.ir")) == gc.to_text(g)
    gc.save(g, tmp_path / "g.json")
    assert gc.to_text(gc.load(tmp_path / "g.json")) == gc.to_text(g)


def test_load_of_bad_text_names_the_file_and_line(tmp_path):
    (tmp_path / "bad.ir").write_text("graph g {\n  %0:f32[2] = input x\n  %1:f32[2] = expp %0\n}\n")
    with pytest.raises(gc.GraphError, match=r"bad\.ir: line 3, column 15: unknown op 'expp'; did you mean 'exp'"):
        gc.load(tmp_path / "bad.ir")
    (tmp_path / "bin.ir").write_bytes(b"\xff\xfe\x00graph")
    with pytest.raises(gc.GraphError, match=r"bin\.ir: neither a JSON nor a text IR file"):
        gc.load(tmp_path / "bin.ir")


# ---------------------------------------------------------------- grad(of=...)


def test_grad_of_an_output_value_is_grad_of_its_name():
    g = examples.two_layer(n=2, d_in=3, hidden=2, d_out=1)
    assert gc.to_text(gc.grad(g, of=g.outputs["loss"])) == gc.to_text(gc.grad(g, of="loss"))


def test_grad_of_a_value_that_is_no_output_lists_the_outputs():
    g = gc.Graph("two")
    x = g.param("x", (3,))
    g.output("loss", gc.sum(x * x))
    g.output("aux", gc.sum(x))
    with pytest.raises(gc.GraphError, match=r"of= takes an output name, and %\d+ \(exp\) is not an output of graph "
                                            r"'two' \(its outputs: loss, aux\)"):
        gc.grad(g, of=gc.exp(x))
    with pytest.raises(gc.GraphError, match=r"of= takes an output name \(one of \['loss', 'aux'\]\), got int"):
        gc.grad(g, of=0)


# ---------------------------------------------------------------- misspelt ops


@pytest.mark.parametrize("op, hint", [("sigmoidd", "did you mean 'sigmoid'?"), ("mat_mul", "did you mean 'matmul'?"),
                                      ("Exp", "did you mean 'exp'"), ("frobnicate", None)])
def test_unknown_ops_get_a_did_you_mean(op, hint):
    text = f"graph g {{\n  %0:f32[2] = input x\n  %1:f32[2] =   {op} %0\n}}\n"
    with pytest.raises(gc.GraphError) as info:
        gc.from_text(text)
    message = str(info.value)
    assert message.startswith(f"line 3, column 17: unknown op {op!r}")
    assert (hint in message) if hint else "did you mean" not in message
    doc = gc.to_json(examples.two_layer(n=2, d_in=3, hidden=2, d_out=1)).replace('"sigmoid"', f'"{op}"')
    with pytest.raises(gc.GraphError) as info:
        gc.from_json(doc)
    assert (hint in str(info.value)) if hint else "did you mean" not in str(info.value)
