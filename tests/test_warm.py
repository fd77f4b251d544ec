"""Compiling every kernel before the first call (``eager=True``, ``fn.warm()``): for exactly the
argument types the calls pass, with a progress line when forced on, in worker processes
(``GRAPHC_COMPILE_WORKERS``) whose results equal in-process ones bit for bit, and back in this
process whenever a worker fails, dies or hangs. Graphs are small; times are never asserted.

Tests that need a kernel compiled afresh use a fresh cache directory and shapes of their own:
a kernel source this process compiled before is reused from memory whatever the directory.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import compiled  # noqa: F401  (sets GRAPHC_CACHE_DIR for this process; children get their own)

import graphc as gc
from graphc import examples
from graphc.codegen import cache, warm
from graphc.profile import example_arguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layouts(n: int = 6):
    """Kernel arguments of every kind: read-only inputs (one 0-d, one int), a constant, and views
    of inputs that numpy copies (a transpose reshaped) or views without copying (a row slice, a
    strided slice, a broadcast)."""
    g = gc.Graph("layouts")
    x = g.input("x", (n, 4))
    s = g.input("s", ())
    k = g.input("k", (n,), "int32")
    flat = gc.reshape(gc.transpose(x), (4 * n,))
    rows = gc.reshape(x[0:3], (12,))
    split = gc.reshape(x[::2], (-1, 2, 2))
    wide = gc.reshape(gc.broadcast_to(s, (n, 4)), (n, 4, 1))
    g.output("flat", gc.exp(flat) * s)
    g.output("rows", rows * g.const(np.arange(12, dtype=np.float32)))
    g.output("split", gc.sum(split * split, axis=2))
    g.output("wide", wide + 1.0)
    g.output("count", gc.sum(gc.cast(k, "float32") + gc.sum(x, axis=1)))
    return g


GRAPHS = {
    "two_layer": lambda: examples.sgd_step(gc.grad(examples.two_layer(n=8, d_in=12, hidden=6, d_out=3)), lr=0.1),
    "residual_sqrt": lambda: (gc.grad(examples.residual_mlp(blocks=3, width=8, batch=16)), "sqrt"),
    "layouts": lambda: _layouts(),
}


def _build(name):
    made = GRAPHS[name]()
    return made if isinstance(made, tuple) else (made, "none")


def _signatures(fn) -> dict:
    return {name: list(cache.load_kernel(ks.source).signatures) for name, ks in fn.kernels.items()}


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("name", list(GRAPHS))
def test_eager_compiles_what_the_calls_use(name, fuse):
    graph, remat = _build(name)
    fn = gc.compile(graph, fuse=fuse, remat=remat, eager=True)
    before = _signatures(fn)
    assert all(before.values()), "a kernel was not compiled"
    args = example_arguments(graph)
    out = fn(**args)
    fn(**args)
    assert _signatures(fn) == before, "a call compiled a kernel again: warm() typed its arguments otherwise"
    lazy = gc.compile(graph, fuse=fuse, remat=remat)(**args)
    assert sorted(out) == sorted(lazy)
    for k in out:
        assert np.array_equal(out[k], lazy[k]), k


def test_warm_returns_the_executable_once_warm():
    graph, _ = _build("two_layer")
    fn = gc.compile(graph)
    assert fn.warm() is fn and fn.warm() is fn
    assert all(_signatures(fn).values())


def test_eager_must_be_a_bool():
    graph, _ = _build("two_layer")
    with pytest.raises(gc.CompileError, match="eager"):
        gc.compile(graph, eager="yes")


@pytest.mark.parametrize("name, value", [("GRAPHC_COMPILE_WORKERS", "zero"), ("GRAPHC_COMPILE_WORKERS", "0"),
                                         ("GRAPHC_PROGRESS", "maybe")])
def test_bad_settings_are_compile_errors(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    with pytest.raises(gc.CompileError, match=name):
        gc.compile(_chain(101), eager=True)


def _chain(n: int, kernels: int = 3):
    """A graph of ``kernels`` loop kernels whose sources are its own (``n`` is in every shape)."""
    g = gc.Graph("chain")
    h = g.input("x", (n, 3))
    for k in range(kernels):
        h = gc.sum(gc.tanh(h * float(k + 2)), axis=1, keepdims=True) + h  # a reduction, then its own kernel
    g.output("y", h)
    return g


def _fresh(monkeypatch, tmp_path, **env):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_progress_line_when_forced(monkeypatch, tmp_path, capfd):
    _fresh(monkeypatch, tmp_path, GRAPHC_PROGRESS="1", GRAPHC_COMPILE_WORKERS="1")
    fn = gc.compile(_chain(102), eager=True)
    err = capfd.readouterr().err
    n = fn.stats["n_loop_kernels"]
    assert n >= 2
    assert f"\rgraphc: compiling kernel 1 of {n} ..." in err and f"graphc: compiling kernel {n} of {n} ..." in err
    assert err.endswith("\n") and err.split("\r")[-1].startswith(f"graphc: compiled {n} kernels in ")
    gc.compile(_chain(102), eager=True)  # all in the cache now: nothing to show
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("setting", ["0", None])
def test_no_progress_unless_forced_or_on_a_terminal(monkeypatch, tmp_path, capfd, setting):
    _fresh(monkeypatch, tmp_path)
    if setting is None:
        monkeypatch.delenv("GRAPHC_PROGRESS", raising=False)  # stderr is captured: not a terminal
    else:
        monkeypatch.setenv("GRAPHC_PROGRESS", setting)
    gc.compile(_chain(103 if setting else 104), eager=True)
    assert capfd.readouterr().err == ""


CHILD = textwrap.dedent('''
    import json, sys
    import numpy as np
    import graphc as gc
    from graphc import examples
    from graphc.codegen import cache
    from graphc.profile import example_arguments

    graph = gc.grad(examples.residual_mlp(blocks=2, width=8, batch=24))
    fn = gc.compile(graph, remat="sqrt", eager=sys.argv[1] == "eager")
    compiled = {k: len(d.signatures) for k, d in cache._loaded.items()}
    out = fn(**example_arguments(graph))
    np.savez(sys.argv[2], **out)
    stats = {key: {"hits": sum(d.stats.cache_hits.values()), "misses": sum(d.stats.cache_misses.values()),
                   "signatures": len(d.signatures), "before_call": compiled.get(key, 0)}
             for key, d in cache._loaded.items()}
    print(json.dumps({"sources": [ks.source for ks in fn.kernels.values()], "numba": stats}))
''')


def _child(tmp_path, mode: str, workers: str) -> tuple[dict, dict]:
    script, cache_dir, result = tmp_path / "child.py", tmp_path / f"cache-{mode}-{workers}", tmp_path / f"{mode}.npz"
    script.write_text(CHILD)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), GRAPHC_COMPILE_WORKERS=workers, GRAPHC_PROGRESS="0")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, str(script), mode, str(result)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(result) as out:
        return json.loads(done.stdout.strip().splitlines()[-1]), {k: out[k] for k in out.files}


def test_parallel_compile_in_a_fresh_cache(tmp_path, monkeypatch):
    """Two workers compile every kernel, for every argument types its steps pass; this process
    only loads them (numba cache hits, no misses) before the call, which compiles nothing; every cache entry is sealed; the results
    are bit-identical to a lazy compile in one process."""
    report, out = _child(tmp_path, "eager", "2")
    assert len(report["numba"]) >= warm.MIN_PARALLEL // 2
    for key, s in report["numba"].items():
        assert s["hits"] >= 1 and s["misses"] == 0, f"kernel {key} was compiled here, not by a worker: {s}"
        # one signature a kernel, or more where steps of different argument types share a source
        # (a read-only input in one step, a buffer in another): all loaded before the call
        assert s["signatures"] == s["before_call"] == s["hits"] >= 1, s
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache-eager-2"))
    assert all(cache.is_cached(source) for source in report["sources"]), "a kernel's numba files are not sealed"
    _, lazy = _child(tmp_path, "lazy", "1")
    assert sorted(out) == sorted(lazy)
    for k in out:
        assert np.array_equal(out[k], lazy[k]), k


FAILING_WORKERS = {
    "exits": "import sys; sys.exit(3)",
    "errs": "import sys\nfor line in sys.stdin:\n    print('error no', flush=True)",
    "babbles": "import sys\nfor line in sys.stdin:\n    print('Traceback: something else', flush=True)",
    "hangs": "import time; time.sleep(600)",
}


HOW = [*FAILING_WORKERS, "cannot_start"]


@pytest.mark.parametrize("how", HOW)
def test_a_failing_worker_falls_back_to_compiling_here(monkeypatch, tmp_path, capfd, how):
    n = 110 + HOW.index(how)  # shapes of this test's own: the kernels compile afresh
    _fresh(monkeypatch, tmp_path, GRAPHC_COMPILE_WORKERS="2", GRAPHC_PROGRESS="1")
    command = ["/nonexistent/python"] if how == "cannot_start" else [sys.executable, "-c", FAILING_WORKERS[how]]
    monkeypatch.setattr(warm, "_worker_command", lambda: command)
    monkeypatch.setattr(warm, "STALL_S", 1.0)
    graph = _chain(n)
    fn = gc.compile(graph, eager=True)
    k = fn.stats["n_loop_kernels"]
    last = capfd.readouterr().err.split("\r")[-1]
    assert last.startswith(f"graphc: compiled {k} kernels in ") and last.endswith(" s (2 worker processes)\n"), last
    assert all(cache.is_cached(ks.source) for ks in fn.kernels.values())
    args = example_arguments(graph)
    before = _signatures(fn)
    out = fn(**args)
    assert _signatures(fn) == before
    compiled.assert_outputs_close(out, gc.evaluate(graph, **args))


def test_eager_on_the_cuda_target():
    """On a GPU the kernels compile before the call; in the simulator there is nothing to
    compile, and eager only loads them."""
    pytest.importorskip("numba.cuda")
    graph, remat = _build("two_layer")
    try:
        fn = gc.compile(graph, target="cuda", remat=remat, eager=True)
    except gc.CompileError as e:
        pytest.skip(str(e))
    args = example_arguments(graph)
    compiled.assert_outputs_close(fn(**args), gc.compile(graph)(**args))
