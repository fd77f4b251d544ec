"""The Executable returned by ``gc.compile``: calling conventions and errors, aliasing and
state between calls, ``stats``, ``report()``, ``graph``, ``profile()``, and the IR dumps."""

import os
import warnings
import re

import numpy as np
import pytest

from compiled import assert_close, assert_outputs_close, copies  # sets GRAPHC_CACHE_DIR first
from strategies import random_arguments

import graphc as gc
from graphc import examples

# ---------------------------------------------------------------- fixtures


def _net():
    """Matmuls, a fused bias/activation, a reduction and several intermediates in the arena."""
    g = gc.Graph("net")
    x = g.input("x", (6, 5))
    w1 = g.param("w1", (5, 4))
    b1 = g.param("b1", (4,))
    w2 = g.param("w2", (4, 3))
    h = gc.tanh(x @ w1 + b1)
    z = gc.sigmoid(h @ w2)
    g.output("loss", gc.sum(z * z))
    g.output("z", z)
    g.output("hmax", gc.max(h, axis=0))
    return g


@pytest.fixture(scope="module")
def net():
    g = _net()
    return g, gc.compile(g)


# ---------------------------------------------------------------- bad calls


def test_missing_extra_wrong_shape_wrong_dtype_inputs(net):
    g, fn = net
    args = random_arguments(g, seed=0)
    missing = {k: v for k, v in args.items() if k != "w2"}
    with pytest.raises(gc.ArgumentError, match="w2"):
        fn(**missing)
    with pytest.raises(gc.ArgumentError, match="bogus"):
        fn(**args, bogus=np.zeros(3))
    bad_shape = dict(args, b1=np.zeros((5,), "float32"))
    with pytest.raises(gc.ShapeError, match="b1"):
        fn(**bad_shape)
    bad_dtype = dict(args, x=args["x"].astype("float64"))
    with pytest.raises(gc.DTypeError, match="'x'"):
        fn(**bad_dtype)
    with pytest.raises(gc.DTypeError, match="w1"):
        fn(**dict(args, w1=[["a"] * 4] * 5))
    with pytest.raises(gc.GraphcError):
        fn(**dict(args, x=args["x"].astype("int32")))
    # every one of them is a GraphcError (a ValueError), and profile() checks the same way
    with pytest.raises(gc.GraphcError, match="w2"):
        fn.profile(**missing)
    with pytest.raises(ValueError):
        fn(**bad_shape)
    # and the executable still works afterwards
    assert_outputs_close(fn(**args), gc.evaluate(g, **args))


@pytest.mark.parametrize("kwargs", [{"target": "tpu"}, {"target": None}, {"remat": "bogus"},
                                    {"remat": "everything"}])
def test_unknown_target_or_remat_is_a_compile_error(kwargs):
    with pytest.raises(gc.CompileError, match=repr(next(iter(kwargs.values()))).strip("'")):
        gc.compile(_net(), **kwargs)


# ---------------------------------------------------------------- aliasing and state


def test_outputs_never_alias_inputs_or_each_other():
    g = gc.Graph("alias")
    x = g.input("x", (3, 4))
    w = g.param("w", (4, 2))
    e = gc.exp(x)
    g.output("x", x)  # an input
    g.output("xt", x.T)  # a view of an input
    g.output("xs", x[1:, ::2])  # a strided view of an input
    g.output("xb", gc.broadcast_to(w[:, :1], (4, 5)))  # a broadcast view of a param
    g.output("e1", e)  # the same value twice
    g.output("e2", e)
    g.output("et", e.T)  # a view of another output
    g.output("mm", x @ w)
    g.output("mm_r", gc.reshape(x @ w, (6,)))
    g.output("c", g.const(np.arange(4, dtype="float32")))  # a constant
    g.output("c2", g.const(np.arange(4, dtype="float32")))
    args = random_arguments(g, seed=1)
    before = copies(args)
    expected = gc.evaluate(g, **args)
    for fuse in (True, False):
        fn = gc.compile(g, fuse=fuse)
        out = fn(**args)
        assert_outputs_close(out, expected)
        for name, a in out.items():
            assert isinstance(a, np.ndarray)
            for arg in args.values():
                assert not np.shares_memory(a, arg), f"output {name!r} aliases an input"
            for other, b in out.items():
                if other != name:
                    assert not np.shares_memory(a, b), f"outputs {name!r} and {other!r} alias"
        # independent arrays: writing one output changes nothing else, not even the next call
        out["e1"][...] = -1.0
        out["c"][...] = 99.0
        assert_close(out["e2"], expected["e2"])
        assert_close(out["et"], expected["et"])
        again = fn(**args)
        assert_outputs_close(again, expected)
        for name, a in args.items():
            np.testing.assert_array_equal(a, before[name], err_msg=f"input {name!r} was changed")


def test_outputs_that_view_intermediate_buffers_survive_later_steps():
    """Outputs that are views (transpose, reshape, slice, broadcast) of an arena buffer are
    copied out correctly although later steps reuse arena memory."""
    g = gc.Graph("views_of_intermediates")
    x = g.input("x", (4, 6), "float64")
    w = g.param("w", (6, 6), "float64")
    a = gc.exp(x * 0.1) @ w
    g.output("a_t", a.T)
    g.output("a_r", gc.reshape(a, (6, 4)))
    g.output("a_s", a[::2, ::-1])
    g.output("a_b", gc.broadcast_to(a[:1], (3, 6)))
    b = gc.tanh(a) @ w
    c = gc.sigmoid(b - 1) @ w
    d = gc.relu(c * 2) @ w
    g.output("final", gc.sum(d * d, axis=1))
    g.output("d_t", (d + 1).T)
    args = random_arguments(g, seed=11)
    expected = gc.evaluate(g, **args)
    for fuse in (True, False):
        fn = gc.compile(g, fuse=fuse)
        assert_outputs_close(fn(**args), expected)
        assert_outputs_close(fn(**args), expected)


def test_inputs_never_mutated_even_when_writeable_and_reused(net):
    g, fn = net
    args = random_arguments(g, seed=2)
    before = copies(args)
    fn(**args)
    fn.profile(**args)
    for name in args:
        np.testing.assert_array_equal(args[name], before[name], err_msg=name)
        assert args[name].flags.writeable  # the caller's arrays are left as they were


def test_repeated_calls_do_not_leak_state(net):
    """The arena is reused between calls: results depend on the arguments only, and arrays
    returned by an earlier call are not touched by later ones."""
    g, fn = net
    a, b = random_arguments(g, seed=3), random_arguments(g, seed=4)
    first = fn(**a)
    kept = copies(first)
    second = fn(**b)
    third = fn(**a)
    assert_outputs_close(first, gc.evaluate(g, **a))
    assert_outputs_close(second, gc.evaluate(g, **b))
    for name in first:
        np.testing.assert_array_equal(third[name], kept[name], err_msg=f"{name}: call 3 != call 1")
        np.testing.assert_array_equal(first[name], kept[name], err_msg=f"{name}: call 1's result changed")


def test_two_executables_of_one_graph_are_independent():
    g = _net()
    f1, f2 = gc.compile(g), gc.compile(g)
    a, b = random_arguments(g, seed=5), random_arguments(g, seed=6)
    r1 = f1(**a)
    r2 = f2(**b)
    assert_outputs_close(r1, gc.evaluate(g, **a))
    assert_outputs_close(r2, gc.evaluate(g, **b))
    assert_outputs_close(f1(**a), r1, rtol=0, atol=0)


# ---------------------------------------------------------------- stats, report, graph


def _flops(graph) -> int:
    return sum(gc.OPS[v.op].cost(tuple(i.type for i in v.inputs), v.type).flops
               for v in graph.nodes if v.op not in ("input", "param", "const"))


def test_stats_keys_and_values(net):
    g, fn = net
    stats = fn.stats
    for key in ("n_kernels", "flops", "peak_bytes", "recompute_flops"):
        assert key in stats, key
        assert isinstance(stats[key], (int, np.integer)), (key, stats[key])
    assert stats["recompute_flops"] == 0
    assert stats["flops"] == _flops(fn.graph)
    # 2 matmuls; the bias+tanh kernel, sigmoid, the sum and the max at least partly fused
    assert 2 < stats["n_kernels"] <= 6
    out = fn(**random_arguments(g, seed=0))
    assert stats["peak_bytes"] >= max(a.nbytes for a in out.values())
    assert stats["peak_bytes"] >= sum(a.nbytes for a in out.values())  # all outputs are live at the end


def test_flops_of_known_graphs():
    g = gc.Graph("sumsq")
    x = g.input("x", (3, 4))
    g.output("s", gc.sum(x * x))
    assert gc.compile(g).stats["flops"] == 12 + 12  # 12 multiplies, 12 additions
    g = gc.Graph("mm")
    a = g.input("a", (3, 4))
    b = g.input("b", (4, 5))
    g.output("c", a @ b)
    fn = gc.compile(g)
    assert fn.stats["flops"] == 2 * 3 * 5 * 4
    assert fn.stats["n_kernels"] == 1 and fn.stats["peak_bytes"] >= 3 * 5 * 4


def test_report_mentions_kernels_and_fusion_reasons():
    graph = examples.sgd_step(gc.grad(examples.two_layer(n=8, d_in=20, hidden=6, d_out=3)), lr=1e-2)
    fn = gc.compile(graph)
    report = fn.report()
    assert isinstance(report, str)
    assert fn.kernels
    for name in fn.kernels:
        assert re.search(rf"\b{re.escape(name)}\b", report), f"kernel {name} not in the report"
    # why values were materialized: reduction results, outputs, matmul operands
    for word in ("reduction", "output", "matmul"):
        assert word in report, word
    assert str(fn.stats["n_loop_kernels"]) in report
    assert f"{fn.stats['peak_bytes']:,}" in report or str(fn.stats["peak_bytes"]) in report


def test_graph_is_the_verified_simplified_ir(net):
    g, fn = net
    gc.verify(fn.graph)
    assert list(fn.graph.outputs) == list(g.outputs)
    assert list(fn.graph.arguments) == list(g.arguments)
    assert gc.to_text(fn.graph) == gc.to_text(gc.simplify(g))
    args = random_arguments(g, seed=7)
    assert_outputs_close(gc.evaluate(fn.graph, **args), gc.evaluate(g, **args))


def test_profile(net):
    g, fn = net
    args = random_arguments(g, seed=8)
    prof = fn.profile(**args)
    assert prof["time_s"] > 0
    assert prof["peak_bytes"] > 0
    rows = prof["kernels"]
    assert isinstance(rows, list) and len(rows) >= fn.stats["n_kernels"]
    for row in rows:
        assert row["time_s"] >= 0
    assert sum(r["time_s"] for r in rows) <= prof["time_s"] * 1.5 + 1e-3
    listed = " ".join(str(v) for r in rows for v in r.values())
    for name in fn.kernels:
        assert re.search(rf"\b{re.escape(name)}\b", listed), f"kernel {name} not profiled"
    assert_outputs_close(fn(**args), gc.evaluate(g, **args))  # profiling changes nothing


# ---------------------------------------------------------------- dumps


PASS_FILES = ("0-input.txt", "1-simplify.txt", "2-remat.txt", "3-fuse.txt", "4-schedule.txt", "5-memory.txt")


def _check_dump(directory, graph, fn):
    files = sorted(os.listdir(directory))
    for f in PASS_FILES:
        assert f in files, f"{f} not dumped (got {files})"
    codegen = {f for f in files if f.startswith("6-codegen-")}
    assert codegen == {f"6-codegen-{name}.py" for name in fn.kernels}
    for name, ks in fn.kernels.items():
        with open(os.path.join(directory, f"6-codegen-{name}.py"), encoding="utf-8") as fh:
            assert fh.read() == ks.source
    for f in PASS_FILES:
        with open(os.path.join(directory, f), encoding="utf-8") as fh:
            text = fh.read()
        parsed = gc.from_text(text)  # comments (pass annotations) are allowed
        gc.verify(parsed)
        want = graph if f == "0-input.txt" else fn.graph
        assert gc.to_text(parsed) == gc.to_text(want), f"{f} does not parse back to the graph"
    with open(os.path.join(directory, "5-memory.txt"), encoding="utf-8") as fh:
        assert "#" in fh.read()  # annotated


def test_dump_writes_every_pass(tmp_path):
    graph = examples.sgd_step(gc.grad(examples.two_layer(n=8, d_in=20, hidden=6, d_out=3)), lr=1e-2)
    fn = gc.compile(graph, dump=str(tmp_path / "dump"))
    _check_dump(tmp_path / "dump", graph, fn)
    args = random_arguments(graph, seed=9)
    assert_outputs_close(fn(**args), gc.evaluate(graph, **args), rtol=1e-4)


def test_graphc_dump_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DUMP", str(tmp_path / "envdump"))
    graph = _net()
    fn = gc.compile(graph)
    _check_dump(tmp_path / "envdump", graph, fn)
    monkeypatch.delenv("GRAPHC_DUMP")
    gc.compile(_net(), dump=None)
    assert sorted(os.listdir(tmp_path)) == ["envdump"]


def test_overflow_in_a_matmul_gives_inf_without_a_warning():
    g = gc.Graph("big")
    a = g.input("a", (2, 2))
    g.output("y", a @ a)
    fn = gc.compile(g)
    x = np.full((2, 2), 3e38, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fn(a=x)["y"]
    assert np.all(np.isinf(out))
    np.testing.assert_array_equal(out, gc.evaluate(g, a=x)["y"])


def test_the_executable_runs_the_plan_it_was_given(net):
    """``fn.plan`` is the compiler's whole product; the executable's attributes are its parts."""
    g, fn = net
    plan = fn.plan
    assert plan.graph is fn.graph and plan.steps is fn.steps and plan.kernels is fn.kernels
    assert plan.memory is fn.memory and fn.stats == plan.stats.as_dict() and fn.report() == plan.report
    assert set(fn.stats) == {"n_kernels", "n_loop_kernels", "n_library_calls", "n_values", "flops", "peak_bytes",
                             "arena_bytes", "saved_bytes", "recompute_flops", "forward_flops", "remat",
                             "remat_note", "target"}
    assert sorted(plan.kernels) == sorted(s.name for s in plan.steps if s.kind == "loop")
    assert plan.remat.graph is plan.graph and plan.remat.strategy == "none"
    assert fn.stats["n_values"] == len(plan.graph.nodes)
    assert fn.stats["peak_bytes"] == plan.memory.peak_bytes
