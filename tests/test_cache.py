"""The on-disk kernel cache (GRAPHC_CACHE_DIR), seen from separate processes.

Each test runs small child processes that compile the same graph with a cache directory of the
test's own, check the results against the reference interpreter, and report what numba's
dispatchers saw (cache hits and misses). Timings are never asserted: a warm cache shows as no
new or rewritten files and as numba cache hits.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

import compiled  # noqa: F401  (sets GRAPHC_CACHE_DIR for this process; children get their own)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent('''
    import json, sys
    import numpy as np
    import graphc as gc
    from graphc.codegen import cache

    g = gc.Graph("cached")
    x = g.input("x", (50, 40), "float64")
    y = g.input("y", (40,), "float64")
    g.output("rows", gc.sum(gc.exp(x * 0.1) * y, axis=1))
    g.output("ew", gc.tanh(x) + y)
    g.output("peak", gc.max(x * x))
    g.output("cols", gc.min(y - 1.0, axis=0))  # two reductions never share a kernel: >= 3 kernels
    fn = gc.compile(g)
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal((50, 40)), "y": rng.standard_normal(40)}
    out = fn(**args)
    ref = gc.evaluate(g, **args)
    errors = {k: float(np.max(np.abs(out[k] - ref[k]) / (1 + np.abs(ref[k])))) for k in ref}
    stats = {key: {"hits": sum(d.stats.cache_hits.values()), "misses": sum(d.stats.cache_misses.values())}
             for key, d in cache._loaded.items()}
    print(json.dumps({"errors": errors, "kernels": sorted(fn.kernels), "numba": stats}))
''')


def _env(cache_dir):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir),
               GRAPHC_CACHE_KEY_FILE=os.path.join(os.path.dirname(str(cache_dir)), "cache.key"))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("GRAPHC_DUMP", None)
    return env


def _start(script, cache_dir):
    return subprocess.Popen([sys.executable, str(script)], env=_env(cache_dir), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc) -> dict:
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, f"child process failed (exit {proc.returncode}):\n{stderr[-3000:]}"
    report = json.loads(stdout.strip().splitlines()[-1])
    for name, err in report["errors"].items():
        assert err < 1e-12, f"output {name!r} differs from the reference by {err}"
    assert report["numba"], "no kernels were loaded"
    return report


def _run(script, cache_dir) -> dict:
    return _finish(_start(script, cache_dir))


def _snapshot(cache_dir) -> dict:
    """Every file under the cache directory: relative path -> (size, inode, content digest). A
    load touches its kernel's source (the clock of eviction), which changes neither."""
    files = {}
    for root, _, names in os.walk(cache_dir):
        for n in names:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            files[os.path.relpath(path, cache_dir)] = (os.stat(path).st_size, os.stat(path).st_ino, digest)
    return files


@pytest.fixture
def child(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


def test_second_process_loads_kernels_from_cache(child, tmp_path):
    cache_dir = tmp_path / "cache"
    first = _run(child, cache_dir)
    assert all(s["misses"] >= 1 and s["hits"] == 0 for s in first["numba"].values()), first["numba"]
    files = _snapshot(cache_dir)
    sources = [f for f in files if os.path.basename(f).startswith("k_") and f.endswith(".py")]
    assert len(sources) == len(first["numba"]) >= 3, files
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files), files
    assert not any(f.endswith(".pyc") for f in files), f"bytecode written into the cache: {files}"

    second = _run(child, cache_dir)
    assert second["kernels"] == first["kernels"]
    assert set(second["numba"]) == set(first["numba"])  # same kernel keys (source hashes)
    for key, s in second["numba"].items():
        assert s["hits"] >= 1 and s["misses"] == 0, f"kernel {key} was compiled again: {s}"
    assert _snapshot(cache_dir) == files, "the second process created or rewrote cache files"


def _corrupt(cache_dir, what: str) -> int:
    """Damage the cache in place; returns how many files were damaged."""
    n = 0
    for root, _, names in os.walk(cache_dir):
        for name in names:
            path = os.path.join(root, name)
            if name.endswith(".py") and what in ("all", "sources"):
                size = os.path.getsize(path)
                with open(path, "r+b") as f:
                    f.truncate(size // 2)
            elif name.endswith(".nbi") and what in ("all", "numba_index"):
                with open(path, "wb") as f:
                    f.write(b"\x80\x04garbage, not a pickle" * 7)
            elif name.endswith(".nbc") and what in ("all", "numba_data"):
                with open(path, "wb") as f:
                    f.write(os.urandom(333))
            else:
                continue
            n += 1
    return n


@pytest.mark.parametrize("what", ["all", "sources", "numba_index", "numba_data"])
def test_corrupted_cache_still_gives_correct_results(child, tmp_path, what):
    """Truncated kernel sources and garbage in numba's index (.nbi) and data (.nbc) files: a
    new process still compiles, runs and gives correct results, without crashing."""
    cache_dir = tmp_path / "cache"
    _run(child, cache_dir)
    assert _corrupt(cache_dir, what) >= 3
    _run(child, cache_dir)  # exits 0 with correct results
    _run(child, cache_dir)  # and so does the next one, whatever the previous one left behind


def test_concurrent_processes_share_one_cache(child, tmp_path):
    cache_dir = tmp_path / "cache"
    procs = [_start(child, cache_dir) for _ in range(3)]
    reports = [_finish(p) for p in procs]
    assert all(r["kernels"] == reports[0]["kernels"] for r in reports)
    leftovers = [f for f in _snapshot(cache_dir) if os.path.basename(f).startswith(".tmp")]
    assert not leftovers, f"temporary files left in the cache: {leftovers}"
    after = _run(child, cache_dir)  # the cache they wrote together is usable
    assert all(s["hits"] >= 1 and s["misses"] == 0 for s in after["numba"].values()), after["numba"]
