"""Hostile inputs: small files and calls that once cost gigabytes, gave raw numpy/numba
tracebacks, or made the compiled code and the reference disagree. Each must be refused with
a named ``GraphcError`` or computed exactly as the reference computes it."""

import json
import tracemalloc

import numpy as np
import pytest

from compiled import CACHE_DIR  # noqa: F401  (sets GRAPHC_CACHE_DIR before graphc compiles anything)

import graphc as gc
from graphc import cli
from graphc.errors import ResourceError
from graphc.ir.ops import BINARY, COMPARE, UNARY

TARGETS = ["cpu", "cpu-unfused", "cuda"]  # cuda: numba's simulator where there is no GPU (conftest.py)


def _compile(graph, target):
    return gc.compile(graph, fuse=target != "cpu-unfused", target="cuda" if target == "cuda" else "cpu")


def _one_hot_file(depth: int) -> str:
    return (f"graph g {{\n  %0:i64[0] = const []\n  %1:f32[0,{depth}] = one_hot[depth={depth}, dtype=f32] %0\n"
            f"  output y = %1\n}}\n")


# ---------------------------------------------------------------- sizes: folding, declared, at run time


def test_folding_one_hot_of_no_labels_allocates_only_its_result():
    g = gc.from_text(_one_hot_file(2**27))  # labels == arange(depth) allocated 1 GiB here
    tracemalloc.start()
    try:
        folded = gc.simplify(g)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    assert folded.outputs["y"].shape == (0, 2**27)


def test_one_hot_of_depth_2_to_the_40_compiles_and_runs(tmp_path, capsys):
    """It raised a raw MemoryError (8 TiB for ``arange(depth)``) from ``graphc compile``."""
    path = tmp_path / "one_hot.ir"
    path.write_text(_one_hot_file(2**40))
    assert cli.main(["compile", str(path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    g = gc.load(path)
    for target in ("cpu", "cpu-unfused"):
        y = _compile(g, target)()["y"]
        assert y.shape == (0, 2**40) and y.dtype == np.float32
    assert gc.evaluate(g)["y"].shape == (0, 2**40)


@pytest.mark.parametrize("make, fragment", [
    (lambda g: g.input("x", (0, 2**63)), "input 'x'"),  # above int64, beside a zero
    (lambda g: g.input("x", (2**40, 2**40)), "input 'x'"),  # the product overflows int64
    (lambda g: g.param("w", (0, 2**61), "float64"), "param 'w': float64"),  # 2**64 bytes
    (lambda g: gc.reshape(g.input("x", (0,)), (0, 10**20)), "reshape"),
    (lambda g: gc.broadcast_to(g.input("x", (1,)), (0, 10**20)), "broadcast_to"),
    (lambda g: gc.one_hot(g.input("labels", (0,), "int64"), 2**62), r"%1 \(one_hot\)"),
])
def test_sizes_no_machine_can_hold_are_shape_errors(make, fragment):
    with pytest.raises(gc.ShapeError, match=fragment):
        make(gc.Graph("g"))


def test_the_verifier_refuses_a_size_no_machine_can_hold():
    g = gc.Graph("g")
    x = g.input("x", (0, 4), "float64")
    x.attrs = {**x.attrs, "shape": (0, 2**61)}  # edited by hand: the builder would refuse it
    x.shape = (0, 2**61)
    with pytest.raises(gc.ShapeError, match=r"%0 \(input\).*bytes"):
        gc.verify(g)


@pytest.mark.parametrize("form", ["text", "json"])
def test_a_file_declaring_a_dimension_above_int64_is_a_graph_error(form):
    if form == "text":
        text = "graph g {\n  %0:f32[0,100000000000000000000] = input x\n  output y = %0\n}\n"
        with pytest.raises(gc.GraphError, match=r"line 2.*100000000000000000000"):
            gc.from_text(text)
    else:
        doc = {"format": "graphc-ir", "version": 1, "name": "g", "outputs": [{"name": "y", "value": 0}],
               "nodes": [{"id": 0, "op": "input", "dtype": "float32", "shape": [0, 10**20], "inputs": [],
                          "attrs": {"name": "x"}}]}
        with pytest.raises(gc.GraphError, match=r"\$\.nodes\[0\]\.shape.*too many elements"):
            gc.from_json(json.dumps(doc))


def _too_big(op):
    """``op`` of a float64 broadcast to 2**59 elements: 4 EiB, which numpy accepts as a shape but
    no machine can allocate."""
    g = gc.Graph("huge")
    x = g.input("x", (1,), "float64")
    g.output("y", op(gc.broadcast_to(x, (2**59,))))
    return g


def test_allocations_that_fail_at_run_time_are_resource_errors():
    x = np.ones(1)
    with pytest.raises(ResourceError, match=r"%2 \(exp\): out of memory"):
        gc.evaluate(_too_big(gc.exp), x=x)
    with pytest.raises(ResourceError, match="graph 'huge': out of memory for its outputs"):
        gc.evaluate(_too_big(lambda v: v), x=x)
    fn = gc.compile(_too_big(lambda v: v))
    with pytest.raises(ResourceError, match="graph 'huge': out of memory") as caught:
        fn(x=x)
    assert isinstance(caught.value, MemoryError) and isinstance(caught.value, gc.GraphcError)


# ---------------------------------------------------------------- integer pow with a negative exponent


def _power_graph(dtype, reduce=False):
    g = gc.Graph("power")
    a = g.input("a", (5,), dtype)
    b = g.input("b", (5,), dtype)
    y = a ** b
    g.output("y", gc.sum(y) if reduce else y)
    g.output("z", a ** -1)  # a constant exponent, read as a literal by the kernels
    return g


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("reduce", [False, True], ids=["elementwise", "in_a_reduction"])
def test_integer_to_a_negative_power_is_the_same_data_error(target, dtype, reduce):
    """The reference refused it; compiled kernels returned 0 or +-1."""
    g = _power_graph(dtype, reduce)
    a = np.array([2, 1, -1, 0, 3], dtype)
    fn = _compile(g, target)
    with pytest.raises(gc.DataError) as got:
        fn(a=a, b=np.array([1, 2, 0, 3, 1], dtype))
    with pytest.raises(gc.DataError) as expected:
        gc.evaluate(fn.graph, a=a, b=np.array([1, 2, 0, 3, 1], dtype))
    assert str(got.value) == str(expected.value)
    assert "negative integer powers are not allowed, got exponent -1" in str(got.value)


@pytest.mark.parametrize("target", TARGETS)
def test_a_negative_exponent_names_the_pow_and_clears_for_the_next_call(target):
    g = gc.Graph("power")
    a = g.input("a", (4,), "int64")
    b = g.input("b", (4,), "int64")
    g.output("y", (a ** b) * 2 + 1)
    fn = _compile(g, target)
    bad = np.array([0, -3, 2, 1])
    with pytest.raises(gc.DataError, match=r"%2 \(pow\): .*exponent -3") as got:
        fn(a=np.array([2, 2, 2, 2]), b=bad)
    with pytest.raises(gc.DataError) as expected:
        gc.evaluate(fn.graph, a=np.array([2, 2, 2, 2]), b=bad)
    assert str(got.value) == str(expected.value)
    good = dict(a=np.array([2, 3, 0, -2]), b=np.array([3, 0, 5, 1]))
    np.testing.assert_array_equal(fn(**good)["y"], gc.evaluate(g, **good)["y"])


# ---------------------------------------------------------------- attributes and names a call cannot reach


@pytest.mark.parametrize("form", ["text", "json"])
def test_slice_attributes_beyond_int64_are_graph_errors_naming_the_attribute(form):
    if form == "text":
        text = ("graph s {\n  %0:f32[4] = input x\n"
                "  %1:f32[1] = slice[starts=[0], stops=[4], steps=[1000000000000000000000000000000]] %0\n"
                "  output y = %1\n}\n")
        with pytest.raises(gc.GraphError, match=r"line 3: .*attribute 'steps'.* does not fit int64"):
            gc.from_text(text)
    else:
        g = gc.Graph("s")
        x = g.input("x", (4,))
        g.output("y", x[1:3])
        doc = json.loads(gc.to_json(g))
        doc["nodes"][1]["attrs"]["stops"] = [-(10**30)]
        with pytest.raises(gc.GraphError, match=r"\$\.nodes\[1\].*attribute 'stops'.* does not fit int64"):
            gc.from_json(json.dumps(doc))


def test_slicing_with_a_step_beyond_int64_keeps_python_semantics():
    g = gc.Graph("s")
    x = g.input("x", (4,))
    g.output("first", x[::10**30])
    g.output("last", x[::-(10**30)])
    g.output("none", x[3:1:10**30])
    xs = np.arange(4, dtype=np.float32)
    for target in ("cpu", "cpu-unfused"):
        got = _compile(g, target)(x=xs)
        for name, want in (("first", xs[::10**30]), ("last", xs[::-(10**30)]), ("none", xs[3:1:10**30])):
            np.testing.assert_array_equal(got[name], want, strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_an_input_named_self_is_passed_by_keyword(target):
    g = gc.Graph("named")
    s = g.input("self", (2,))
    args = g.input("args", (2,))
    g.output("y", s * 2.0 + args)
    fn = _compile(g, target)
    call = {"self": np.ones(2, np.float32), "args": np.full(2, 0.5, np.float32)}
    np.testing.assert_array_equal(fn(**call)["y"], [2.5, 2.5])
    assert fn.profile(**call)["kernels"]
    with pytest.raises(gc.ArgumentError, match=r"call fn\(self=\.\.\., args=\.\.\.\)"):
        fn(call["self"])


def test_an_input_named_device_outputs_is_refused_for_cuda_and_fine_on_the_cpu():
    g = gc.Graph("g")
    g.output("y", -g.input("device_outputs", (2,)))
    with pytest.raises(gc.CompileError, match="device_outputs.*rename it"):
        gc.compile(g, target="cuda")
    np.testing.assert_array_equal(gc.compile(g)(device_outputs=np.ones(2, np.float32))["y"], [-1, -1])


# ---------------------------------------------------------------- signed zeros and other special values


def _special(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    return np.array([-0.0, 0.0, np.nan, np.inf, -np.inf, fi.smallest_subnormal, -fi.smallest_subnormal,
                     fi.tiny, -fi.tiny, 1.0, -1.0, 0.5, -2.0, fi.max, -fi.max], dtype)


# ops whose results are exact (correctly rounded or not rounded at all): compiled kernels must give
# the reference's bits on every operand; the others (libm against numpy, vectorized float32
# approximations) only where the reference gives a zero, an infinity or NaN
EXACT = {"neg", "abs", "sign", "relu", "square", "sqrt", "reciprocal", "stop_gradient", "add", "sub", "mul", "div",
         "maximum", "minimum", "where", "rows_max", "rows_min", "columns_max", "columns_min", "cast", *COMPARE}


def _special_graph(dtype, n):
    g = gc.Graph("special")
    x = g.input("x", (n * n,), dtype)
    y = g.input("y", (n * n,), dtype)
    c = g.input("c", (n * n,), "bool")
    for name in UNARY:
        g.output(name, getattr(gc, name)(x))
    for name in list(BINARY) + list(COMPARE):
        g.output(name, getattr(gc, name)(x, y))
    g.output("where", gc.where(c, x, y))
    g.output("cast", gc.cast(x, "float64" if dtype == "float32" else "float32"))
    square = gc.reshape(x, (n, n))
    for name in ("max", "min"):
        g.output(f"rows_{name}", getattr(gc, name)(square, axis=1))
        g.output(f"columns_{name}", getattr(gc, name)(square, axis=0))
    return g


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal bits, NaN matching NaN (numpy and LLVM may set NaN payloads apart)."""
    if a.dtype.kind != "f":
        return a == b
    unsigned = f"u{a.itemsize}"
    return (np.isnan(a) & np.isnan(b)) | (a.view(unsigned) == b.view(unsigned))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_values_and_signed_zeros_agree_bit_for_bit(target, dtype):
    """relu(-0.0) and sign(-0.0) were -0.0 compiled and +0.0 in the reference; maximum, minimum
    and the max/min reductions returned whichever zero of a tie came first."""
    v = _special(dtype)
    a, b = (m.ravel() for m in np.meshgrid(v, v))
    g = _special_graph(dtype, len(v))
    args = dict(x=a, y=b, c=np.arange(a.size) % 2 == 0)
    expected = gc.evaluate(g, **args)
    got = _compile(g, target)(**args)
    for name, e in expected.items():
        assert got[name].dtype == e.dtype and got[name].shape == e.shape, name
        same = _same_bits(got[name], e)
        if name not in EXACT:
            same |= np.isfinite(e) & (e != 0)
        bad = np.flatnonzero(~same)
        assert not bad.size, (f"{name}: at {a[bad[0]]!r}, {b[bad[0]]!r} got {got[name].flat[bad[0]]!r}, "
                              f"the reference {e.flat[bad[0]]!r}")


@pytest.mark.parametrize("target", TARGETS)
def test_relu_and_sign_of_minus_zero_are_plus_zero(target):
    g = gc.Graph("zeros")
    x = g.input("x", (2,), "float64")
    g.output("inv_relu", 1.0 / gc.relu(x))
    g.output("inv_sign", 1.0 / gc.sign(x))
    g.output("inv_max", 1.0 / gc.maximum(x, -x))
    g.output("inv_min", 1.0 / gc.minimum(x, -x))
    got = _compile(g, target)(x=np.array([-0.0, 0.0]))
    np.testing.assert_array_equal(got["inv_relu"], [np.inf, np.inf])
    np.testing.assert_array_equal(got["inv_sign"], [np.inf, np.inf])
    np.testing.assert_array_equal(got["inv_max"], [np.inf, np.inf])
    np.testing.assert_array_equal(got["inv_min"], [-np.inf, -np.inf])


# ---------------------------------------------------------------- ambiguous files


def _const_text(dtype: str, literal: str) -> str:
    return f"graph c {{\n  %0:{dtype}[] = const {literal}\n  output y = %0\n}}\n"


def _const_json(dtype: str, literal: str) -> str:
    return ('{"format": "graphc-ir", "version": 1, "name": "c", "outputs": [{"name": "y", "value": 0}], '
            f'"nodes": [{{"id": 0, "op": "const", "dtype": "{dtype}", "shape": [], "inputs": [], '
            f'"attrs": {{"value": [{literal}]}}}}]}}')


@pytest.mark.parametrize("load, where", [(gc.from_text, r"line 2, column 20"), (gc.from_json, r"\$\.nodes\[0\]")])
def test_a_float_literal_its_dtype_cannot_hold_is_refused(load, where):
    make = _const_text if load is gc.from_text else _const_json
    with pytest.raises(gc.GraphError, match=where + r".*1e\+300 is out of range for float32.*3\.4028235e\+38"):
        load(make("f32", "1e300") if load is gc.from_text else make("float32", "1e300"))
    with pytest.raises(gc.GraphError, match="1e400 is out of range for float64"):
        load(make("f64", "1e400") if load is gc.from_text else make("float64", "1e400"))
    infinity = make("f32", "-inf") if load is gc.from_text else make("float32", '"-inf"')
    assert gc.evaluate(load(infinity))["y"] == -np.inf  # written as an infinity: still one


def test_non_finite_json_constants_are_refused():
    with pytest.raises(gc.GraphError, match="NaN is not JSON"):
        gc.from_json(_const_json("float32", "NaN"))


def test_a_float_scalar_its_dtype_cannot_hold_is_refused_by_the_builder():
    g = gc.Graph("c")
    x = g.input("x", (2,))
    with pytest.raises(gc.GraphError, match="1e\\+300 is out of range for float32"):
        x * 1e300
    with pytest.raises(gc.GraphError, match="out of range for float32"):
        g.const([1.0, 1e39], "float32")
    assert (x * np.inf).dtype == "float32"


@pytest.mark.parametrize("where, edit, fragment", [
    (r"\$", lambda t: t.replace('"name": "c"', '"name": "c", "name": "d"'), "'name'"),
    (r"\$\.nodes\[0\]", lambda t: t.replace('"op": "const"', '"op": "const", "op": "input"'), "'op'"),
    (r"\$\.nodes\[0\]\.attrs", lambda t: t.replace('"value": [1.5]', '"value": [1.5], "value": [2.5]'), "'value'"),
])
def test_a_json_key_given_twice_is_refused(where, edit, fragment):
    with pytest.raises(gc.GraphError, match=where + ": key " + fragment + " is given twice"):
        gc.from_json(edit(_const_json("float32", "1.5")))


def test_a_text_attribute_given_twice_is_refused():
    text = ("graph g {\n  %0:f32[3] = input x\n  %1:f32[] = sum[axes=[0], axes=[], keepdims=false] %0\n"
            "  output y = %1\n}\n")
    with pytest.raises(gc.GraphError, match=r"line 3, column 28: sum attribute 'axes' is given twice"):
        gc.from_text(text)


@pytest.mark.parametrize("line, column", [
    ("%0:f32[\uff13] = input x", 10),  # a fullwidth 3
    ("%0:f32[\u0663] = input x", 10),  # an Arabic-Indic 3
    ("%0:f32[3] = input x\n  %1:f32[] = const \u0661.5", 20),
    ("%\u0660:f32[3] = input x", 3),
])
def test_digits_outside_ascii_are_refused(line, column):
    text = f"graph g {{\n  {line}\n  output y = %0\n}}\n"
    with pytest.raises(gc.GraphError, match=rf"line \d, column {column}: unexpected character"):
        gc.from_text(text)
