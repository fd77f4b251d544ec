"""The text form of the IR: printing, parsing, exact round trips and precise parse errors."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
from strategies import (arguments, assert_same_array, assert_same_outputs, graphs, random_arguments,
                        special_floats)

# hypothesis's explain phase costs seconds per failure and adds little to these reports
NO_EXPLAIN = tuple(p for p in Phase if p != Phase.explain)

PROPERTY = settings(max_examples=100, deadline=None, phases=NO_EXPLAIN,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def roundtrip(g):
    return gc.from_text(gc.to_text(g))


# ---------------------------------------------------------------- properties on random graphs


@PROPERTY
@given(st.data())
def test_random_graphs_print_parse_print_is_identity(data):
    g = data.draw(graphs(allow_empty=data.draw(st.booleans())))
    text = gc.to_text(g)
    g2 = gc.from_text(text)
    gc.verify(g2)
    assert gc.to_text(g2) == text
    assert g2.name == g.name
    assert list(g2.outputs) == list(g.outputs)
    assert list(g2.arguments) == list(g.arguments)
    assert [(v.op, v.shape, v.dtype) for v in g2.nodes] == [(v.op, v.shape, v.dtype) for v in g.nodes]


@PROPERTY
@given(st.data())
def test_parsed_graph_evaluates_bit_for_bit_like_the_original(data):
    g = data.draw(graphs(allow_empty=data.draw(st.booleans())))
    g2 = roundtrip(g)
    args = data.draw(arguments(g, finite=data.draw(st.booleans())))
    expected = gc.evaluate(g, **args)
    assert_same_outputs(gc.evaluate(g2, **args), expected)
    # the graph's own constants (nan, -0.0, subnormals ...) come back bit for bit as well
    for v, v2 in zip(g.nodes, g2.nodes):
        if v.op == "const":
            assert_same_array(v2.attrs["value"], v.attrs["value"], f"const %{v.id}")


def test_strategy_helpers_draw_matching_arguments():
    """random_arguments fits every graph it is given (shapes, dtypes, index ranges)."""

    @settings(max_examples=20, deadline=None, phases=NO_EXPLAIN, suppress_health_check=[HealthCheck.too_slow])
    @given(graphs())
    def check(g):
        args = random_arguments(g, seed=1)
        assert set(args) == set(g.arguments)
        for name, v in g.arguments.items():
            assert args[name].shape == v.shape and args[name].dtype == np.dtype(v.dtype)
        out = gc.evaluate(g, **args)
        assert set(out) == set(g.outputs)
        assert_same_outputs(gc.evaluate(roundtrip(g), **args), out)

    check()


# ---------------------------------------------------------------- constants survive exactly


def const_graph(array):
    g = gc.Graph("consts")
    g.output("c", g.const(array))
    return g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_float_constants_survive_exactly(dtype):
    values = np.array(special_floats(dtype), dtype=dtype)
    values = np.concatenate([values, np.array([1e-45, 2e-45, 1e-40, 3.4028235e38, -3.4028235e38], dtype=dtype)])
    g = const_graph(values)
    text = gc.to_text(g)
    for word in ("nan", "inf", "-inf", "-0.0"):
        assert re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w.])", text), (word, text)
    g2 = gc.from_text(text)
    back = g2.nodes[0].attrs["value"]
    assert_same_array(back, values)
    assert_same_array(gc.evaluate(g2)["c"], values)
    # bit patterns, not just values: every non-nan float is the same bits
    finite = ~np.isnan(values)
    uint = {"float32": np.uint32, "float64": np.uint64}[dtype]
    np.testing.assert_array_equal(back[finite].view(uint), values[finite].view(uint))
    assert gc.to_text(g2) == text


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scalar_special_constants_survive_exactly(dtype):
    for x in special_floats(dtype):
        value = np.array(x, dtype=dtype)
        g2 = roundtrip(const_graph(value))
        assert_same_array(g2.nodes[0].attrs["value"], value, f"{dtype} {x!r}")


@settings(max_examples=100, deadline=None, phases=NO_EXPLAIN)
@given(st.sampled_from(["float32", "float64"]).flatmap(
    lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                         elements=st.floats(width=32 if d == "float32" else 64))))
def test_any_float_constant_survives_exactly(array):
    g2 = roundtrip(const_graph(array))
    assert_same_array(g2.nodes[0].attrs["value"], array)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_int_constant_extremes_survive_exactly(dtype):
    info = np.iinfo(dtype)
    values = np.array([info.min, info.max, -1, 0, 1, info.min + 1, info.max - 1], dtype=dtype)
    g2 = roundtrip(const_graph(values))
    assert_same_array(g2.nodes[0].attrs["value"], values)


def test_bool_and_empty_constants_survive_exactly():
    for array in (np.array([[True, False], [False, True]]), np.array(True), np.zeros((0,), "float32"),
                  np.zeros((2, 0), "int64"), np.zeros((0, 3), "float64"), np.zeros((1, 1, 1), "float32")):
        g2 = roundtrip(const_graph(array))
        assert_same_array(g2.nodes[0].attrs["value"], array)


def test_printed_form_matches_the_documented_syntax():
    g = gc.Graph("two_layer")
    x = g.input("x", (64, 1000))
    w1 = g.param("w1", (1000, 100))
    h = gc.sigmoid(x @ w1)
    g.output("loss", gc.sum(h * 2.0))
    text = gc.to_text(g)
    lines = text.splitlines()
    assert lines[0] == "graph two_layer {" and lines[-1] == "}"
    assert "  %0:f32[64,1000] = input x" in lines
    assert "  %1:f32[1000,100] = param w1" in lines
    assert "  %2:f32[64,100] = matmul %0 %1" in lines
    assert "  %3:f32[64,100] = sigmoid %2" in lines
    assert "  %4:f32[] = const 2.0" in lines
    assert "  %7:f32[] = sum[axes=[0,1], keepdims=false] %6" in lines
    assert "  output loss = %7" in lines
    assert str(g) == text


# ---------------------------------------------------------------- hand-written text


def test_non_canonical_numbering_and_order_load_and_print_renumbered():
    text = """
    # hand written: sparse labels, uses before definitions (acyclic), comments, blank lines
    graph hand {

      %20:f32[3] = add %10 %30   # uses %30, defined below
      %10:f32[3] = input x
      %30:f32[3] = mul %10 %40
      %40:f32[3] = const [1.5, -0.0, nan]
      output out = %20
      output again = %30
    }
    """
    g = gc.from_text(text)
    gc.verify(g)
    assert gc.to_text(g) == (
        "graph hand {\n"
        "  %0:f32[3] = input x\n"
        "  %1:f32[3] = const [1.5,-0.0,nan]\n"
        "  %2:f32[3] = mul %0 %1\n"
        "  %3:f32[3] = add %0 %2\n"
        "  output out = %3\n"
        "  output again = %2\n"
        "}\n")
    x = np.array([1.0, 2.0, 3.0], "float32")
    out = gc.evaluate(g, x=x)
    np.testing.assert_array_equal(out["out"], x + x * np.array([1.5, -0.0, np.nan], "float32"))


def test_keyword_like_names_round_trip():
    g = gc.Graph("graph")
    a = g.input("output", (2,))
    b = g.param("nan", (2,))
    c = g.input("inf", (2,), dtype="int64")
    d = g.input("true", (), dtype="float64")
    g.output("graph", a + b)
    g.output("input", gc.cast(c, "float32") * d)
    g.output("output", a)
    text = gc.to_text(g)
    g2 = gc.from_text(text)
    assert gc.to_text(g2) == text
    assert list(g2.inputs) == ["output", "inf", "true"] and list(g2.params) == ["nan"]
    args = random_arguments(g, seed=3)
    assert_same_outputs(gc.evaluate(g2, **args), gc.evaluate(g, **args))


def test_attribute_and_operand_forms_parse():
    text = """graph t {
  %0:f32[2,3] = input x
  %1:i64[2] = input lab
  %2:f32[3,2] = transpose[perm=[1,0]] %0
  %3:f32[2,1] = sum[keepdims=true, axes=[1]] %0
  %4:f64[2,3] = cast[dtype=f64] %0
  %5:f32[2,4] = one_hot[depth=4, dtype=f32] %1
  %6:f32[2,6] = concat[axis=1] %0 %0
  %7:f32[1,3] = slice[starts=[1,2], stops=[2,-1], steps=[1,-1]] %0
  %8:bool[2,3] = lt %0 %0
  %9:f32[2,3] = where %8 %0 %0
  output a = %2
  output b = %3
  output c = %4
  output d = %5
  output e = %6
  output f = %7
  output g = %9
}
"""
    g = gc.from_text(text)
    gc.verify(g)
    # attributes print in schema order, so the swapped sum attributes come back canonical
    assert "sum[axes=[1], keepdims=true] %0" in gc.to_text(g)
    x = np.arange(6, dtype="float32").reshape(2, 3)
    out = gc.evaluate(g, x=x, lab=np.array([3, 0]))
    np.testing.assert_array_equal(out["a"], x.T)
    np.testing.assert_array_equal(out["c"], x.astype("float64"))
    np.testing.assert_array_equal(out["d"], np.eye(4, dtype="float32")[[3, 0]])
    np.testing.assert_array_equal(out["f"], x[1:2, ::-1])  # Python range(2, -1, -1) semantics
    assert gc.from_text(gc.to_text(g)).nodes[7].attrs == g.nodes[7].attrs


def test_ellipsis_indexing_builds_and_round_trips():
    """Basic indexing with ``...`` (documented in build.getitem) gives a graph that matches numpy."""
    g = gc.Graph("ell")
    x = g.input("x", (2, 3, 4))
    cases = {"a": (Ellipsis,), "b": (Ellipsis, 0), "c": (0, Ellipsis), "d": (None, Ellipsis, slice(1, 3)),
             "e": (1, Ellipsis, None, 2)}
    for name, index in cases.items():
        g.output(name, x[index])
    g2 = roundtrip(g)
    data = np.arange(24, dtype="float32").reshape(2, 3, 4)
    out = gc.evaluate(g2, x=data)
    for name, index in cases.items():
        assert_same_array(out[name], data[index], f"x[{index}]")


def test_scalar_erf_evaluates():
    """erf of a rank-0 value, printed and parsed back, evaluates like math.erf."""
    import math

    g = gc.Graph("erf0")
    x = g.input("x", (), dtype="float64")
    g.output("y", gc.erf(x))
    g.output("z", gc.erf(g.const(np.float32(0.5))))
    g2 = roundtrip(g)
    out = gc.evaluate(g2, x=np.float64(0.25))
    assert_same_array(out["y"], np.array(math.erf(0.25)))
    assert_same_array(out["z"], np.array(math.erf(0.5), dtype="float32"))


# ---------------------------------------------------------------- parse errors


GOOD = """graph g {
  %0:f32[2] = input x
  %1:f32[2] = neg %0
  output y = %1
}
"""


def with_line(line_no: int, new: str, text: str = GOOD) -> str:
    """``text`` with line ``line_no`` (1-based) replaced by ``new`` (which may hold newlines)."""
    lines = text.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


BAD_TEXTS = {
    "unknown op": (with_line(3, "  %1:f32[2] = frobnicate %0"), 3, "frobnicate"),
    "op name that is code": (with_line(3, "  %1:f32[2] = __import__ %0"), 3, "__import__"),
    "unknown dtype": (with_line(2, "  %0:f16[2] = input x"), 2, "f16"),
    "unknown dtype in attribute": (with_line(3, "  %1:f32[2] = cast[dtype=f16] %0"), 3, "f16"),
    "dangling operand": (with_line(3, "  %1:f32[2] = neg %7"), 3, "%7"),
    "duplicate label": (with_line(3, "  %0:f32[2] = neg %0"), 3, "%0"),
    "duplicate input name": (with_line(3, "  %1:f32[2] = input x"), 3, "x"),
    "declared shape does not match the rule": (with_line(3, "  %1:f32[3] = neg %0"), 3, "[3]"),
    "declared dtype does not match the rule": (with_line(3, "  %1:f64[2] = neg %0"), 3, "float64"),
    "operand dtype not allowed": (with_line(3, "  %1:bool[2] = lt %0 %0\n  %2:bool[2] = exp %1"), 4, "exp"),
    "missing closing brace": (GOOD.replace("}\n", ""), 4, "}"),
    "closing brace not last": (GOOD + "  %9:f32[] = const 1.0\n", 6, "}"),
    "missing header": (GOOD.replace("graph g {", "graf g {"), 1, "graph"),
    "garbage character": (with_line(3, "  %1:f32[2] = neg %0 $"), 3, "$"),
    "garbage quote": (with_line(2, '  %0:f32[2] = input "x"'), 2, '"'),
    "garbage non-ascii": (with_line(3, "  %1:f32[2] = neg %0 \u00e9"), 3, "\u00e9"),
    "bad attribute name": (with_line(3, "  %1:f32[] = sum[axis=[0], keepdims=false] %0"), 3, "axis"),
    "missing attribute": (with_line(3, "  %1:f32[] = sum[axes=[0]] %0"), 3, "keepdims"),
    "attribute of the wrong kind": (with_line(3, "  %1:f32[] = sum[axes=[0], keepdims=1] %0"), 3, "bool"),
    "wrong number of operands": (with_line(3, "  %1:f32[2] = add %0"), 3, "add"),
    "const with too few values": (with_line(2, "  %0:f32[3] = const [1.0, 2.0]"), 2, "3"),
    "const with too many values": (with_line(2, "  %0:f32[2,2] = const [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]"), 2, "4"),
    "int32 const out of range": (with_line(2, "  %0:i32[2] = const [0, 2147483648]"), 2, "int32"),
    "int32 const out of range below": (with_line(2, "  %0:i32[] = const -2147483649"), 2, "int32"),
    "int64 const out of range": (with_line(2, "  %0:i64[] = const 9223372036854775808"), 2, "int64"),
    "float in an int const": (with_line(2, "  %0:i32[] = const 1.5"), 2, "1.5"),
    "int in a bool const": (with_line(2, "  %0:bool[] = const 1"), 2, "bool"),
    "bool in a float const": (with_line(2, "  %0:f32[] = const true"), 2, "float32"),
    "output of an undefined value": (with_line(4, "  output y = %9"), 4, "%9"),
    "duplicate output name": (with_line(4, "  output y = %1\n  output y = %0"), 5, "y"),
    "input with operands": (with_line(2, "  %0:f32[2] = input x %0"), 2, ""),
    "negative input dimension": (with_line(2, "  %0:f32[-2] = input x"), 2, "-2"),
}


@pytest.mark.parametrize("case", list(BAD_TEXTS), ids=list(BAD_TEXTS))
def test_parse_errors_are_graph_errors_naming_the_line(case):
    text, line_no, fragment = BAD_TEXTS[case]
    with pytest.raises(gc.GraphError) as info:
        gc.from_text(text)
    message = str(info.value)
    assert re.search(rf"\bline {line_no}\b", message), message
    assert fragment in message, message


def test_cycle_is_rejected_naming_a_line_and_the_cycle():
    text = """graph cyc {
  %0:f32[2] = input x
  %3:f32[2] = add %0 %4
  %4:f32[2] = neg %3
  output y = %4
}
"""
    with pytest.raises(gc.GraphError) as info:
        gc.from_text(text)
    message = str(info.value)
    assert re.search(r"\bline [34]\b", message) and "cycle" in message, message
    assert "%3" in message and "%4" in message, message
    # a self-loop is a cycle too
    with pytest.raises(gc.GraphError, match=r"line 3\b.*cycle"):
        gc.from_text(with_line(3, "  %1:f32[2] = neg %1"))


def test_out_of_order_acyclic_definitions_still_load():
    text = """graph fwd {
  %4:f32[2] = neg %3
  %3:f32[2] = add %0 %0
  %0:f32[2] = input x
  output y = %4
}
"""
    g = gc.from_text(text)
    out = gc.evaluate(g, x=np.array([1.0, -2.0], "float32"))
    np.testing.assert_array_equal(out["y"], np.array([-2.0, 4.0], "float32"))
    assert [v.op for v in g.nodes] == ["input", "add", "neg"]


def test_non_text_and_empty_input_are_graph_errors():
    for bad in (None, 3, b"graph g {\n}\n"):
        with pytest.raises(gc.GraphError):
            gc.from_text(bad)
    for bad in ("", "   \n# only a comment\n", "graph g {"):
        with pytest.raises(gc.GraphError):
            gc.from_text(bad)


def test_empty_graph_round_trips():
    g = gc.from_text("graph empty {\n}\n")
    assert g.nodes == [] and g.outputs == {}
    assert gc.to_text(g) == "graph empty {\n}\n"


# Inputs that must be rejected as GraphError (a line number included), never another exception
# (OverflowError, ValueError, RecursionError from deep inside the parser or numpy).
HOSTILE_NUMBERS = {
    "int literal too big for a float const": (with_line(2, "  %0:f32[] = const " + "1" * 400), 2),
    "5000-digit int literal": (with_line(2, "  %0:i64[] = const " + "7" * 5000), 2),
    "5000-digit label": (GOOD.replace("%1", "%" + "1" * 5000), 3),
    "5000-digit attribute": (with_line(3, "  %1:f32[] = sum[axes=[" + "1" * 5000 + "], keepdims=false] %0"), 3),
    "huge slice bound": (with_line(3, "  %1:f32[2] = slice[starts=[0], stops=[" + "9" * 30 + "], steps=[1]] %0"), 3),
    "negative dims in a const type": (with_line(2, "  %0:f32[-1,-1] = const 1.0"), 2),
    "const type with too many elements": (with_line(2, "  %0:f32[" + "9" * 23 + ",0] = const []"), 2),
    "deeply nested const literal": (with_line(2, "  %0:f32[1] = const " + "[" * 100_000 + "1.0" + "]" * 100_000), 2),
    "deeply nested attribute": (with_line(3, "  %1:f32[] = sum[axes=" + "[" * 100_000 + "0" + "]" * 100_000
                                          + ", keepdims=false] %0"), 3),
}


@pytest.mark.parametrize("case", list(HOSTILE_NUMBERS), ids=list(HOSTILE_NUMBERS))
def test_hostile_numbers_are_graph_errors(case):
    text, line_no = HOSTILE_NUMBERS[case]
    with pytest.raises(gc.GraphError, match=rf"\bline {line_no}\b"):
        gc.from_text(text)


def test_value_with_too_many_elements_is_rejected():
    """Shapes are capped (shapes.MAX_ELEMENTS) so sizes never overflow; a loaded graph must respect
    the cap whichever op produces the value, or it could not even be saved and loaded as JSON."""
    with pytest.raises(gc.GraphError, match=r"\bline 2\b"):
        gc.from_text(with_line(2, "  %0:f32[" + "9" * 23 + "] = input x"))
    text = """graph big {
  %0:i64[2] = input lab
  %1:f32[2,100000000000000000000] = one_hot[depth=100000000000000000000, dtype=f32] %0
  output y = %1
}
"""
    with pytest.raises(gc.GraphError, match=r"\bline 3\b"):
        gc.from_text(text)


# ---------------------------------------------------------------- fuzz


JUNK = ["%", "%99", "[", "]", ",", "=", ":", "{", "}", "#", "-", "nan", "inf", "1e999", "9" * 40, "-" + "9" * 40,
        "f16", "output", "graph", "__import__('os')", "\x00", "\u00e9", " ", "\n", "%0", "true", "[" * 50]


@settings(max_examples=200, deadline=None, phases=NO_EXPLAIN,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_fuzzed_text_parses_or_raises_graph_error(data):
    """Mutated text either loads as a well-formed graph that prints and parses back stably, or
    raises exactly GraphError naming a line; never any other exception."""
    g = data.draw(graphs(max_ops=8), label="graph")
    lines = gc.to_text(g).splitlines()
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        kind = data.draw(st.sampled_from(["insert", "delete_char", "number", "number", "number", "dup_line",
                                          "drop_line", "swap_lines", "word", "word"]), label="kind")
        line = lines[i]
        if kind in ("insert", "delete_char", "number", "word"):
            pos = data.draw(st.integers(0, len(line)), label="pos")
            if kind == "insert":
                line = line[:pos] + data.draw(st.sampled_from(JUNK), label="junk") + line[pos:]
            elif kind == "delete_char":
                line = line[:pos] + line[pos + 1:]
            elif kind == "number":
                numbers = list(re.finditer(r"-?\d+(\.\d*)?(e[-+]?\d+)?", line))
                if numbers:
                    m = data.draw(st.sampled_from(numbers), label="which")
                    new = data.draw(st.sampled_from(["-1", "0", "1", "2147483648", "9223372036854775808", "1e400",
                                                     "-0.0", "nan", "1" * 400, "7" * 5000, "0.5"]), label="new")
                    line = line[:m.start()] + new + line[m.end():]
            else:
                words = list(re.finditer(r"[A-Za-z_]\w*", line))
                if words:
                    m = data.draw(st.sampled_from(words), label="which")
                    new = data.draw(st.sampled_from(sorted(gc.OPS) + ["f32", "i64", "bool", "x", "true", "output"]),
                                    label="new")
                    line = line[:m.start()] + new + line[m.end():]
            lines[i] = line
        elif kind == "dup_line":
            lines.insert(data.draw(st.integers(0, len(lines)), label="to"), line)
        elif kind == "drop_line" and len(lines) > 1:
            del lines[i]
        elif kind == "swap_lines":
            j = data.draw(st.integers(0, len(lines) - 1), label="other")
            lines[i], lines[j] = lines[j], lines[i]
    text = "\n".join(lines) + "\n"
    try:
        g2 = gc.from_text(text)
    except gc.GraphError as e:
        assert type(e) is gc.GraphError
        assert re.search(r"\bline \d+\b", str(e)) or str(e).startswith("empty text"), str(e)
        return
    gc.verify(g2)
    printed = gc.to_text(g2)
    assert gc.to_text(gc.from_text(printed)) == printed
