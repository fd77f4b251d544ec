"""The kernel cache against hostile or broken contents: what runs is what graphc checked.

Each test has a cache directory and a seal key file of its own (``GRAPHC_CACHE_DIR``,
``GRAPHC_CACHE_KEY_FILE``) and forgets the kernels this process loaded, so that compiling again
loads them from that directory as a new process would. Small graphs; results are checked
against the reference interpreter; no timings.
"""

import importlib._bootstrap_external
import importlib.util
import os
import pickle
import re
import warnings

import numpy as np
import pytest

import compiled  # noqa: F401  (sets GRAPHC_CACHE_DIR for the session; each test sets its own)
import graphc as gc
from graphc.codegen import cache


@pytest.fixture
def private(tmp_path, monkeypatch):
    """A fresh cache directory and key; nothing loaded in this process."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHC_CACHE_KEY_FILE", str(tmp_path / "config" / "cache.key"))
    monkeypatch.setattr(cache, "_loaded", {})
    monkeypatch.setattr(cache, "_fallback", {}, raising=False)
    monkeypatch.setattr(cache, "_secrets", {}, raising=False)
    return tmp_path / "cache"


def _graph():
    g = gc.Graph("trust")
    x = g.input("x", (7, 5), "float64")
    g.output("y", gc.tanh(x) * 2.0 + 1.0)
    g.output("s", gc.sum(gc.exp(x * 0.1), axis=1))
    return g


def _run() -> dict:
    """Compile and call the graph afresh (kernels loaded from the cache directory); results are
    checked against the reference; the kernel sources."""
    cache._loaded.clear()
    g = _graph()
    fn = gc.compile(g)
    x = np.linspace(-2.0, 2.0, 35).reshape(7, 5)
    out, ref = fn(x=x), gc.evaluate(g, x=x)
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-12, atol=0)
    return [ks.source for ks in fn.kernels.values()]


def _kernel_file(directory, source):
    key = cache.kernel_key(source)
    return directory / key[:2] / f"k_{key}.py"


def _plant_pyc(py_path, code_source: str | None, body: bytes | None = None) -> str:
    """Bytecode in ``__pycache__`` whose header matches ``py_path`` (mtime and size), so Python's
    import would take it for the compiled file: of ``code_source``, or a valid header then ``body``."""
    st = os.stat(py_path)
    code = compile(code_source or "pass\n", str(py_path), "exec")
    data = bytes(importlib._bootstrap_external._code_to_timestamp_pyc(code, st.st_mtime, st.st_size))
    if body is not None:
        data = data[:16] + body
    pyc = importlib.util.cache_from_source(str(py_path))
    os.makedirs(os.path.dirname(pyc), exist_ok=True)
    with open(pyc, "wb") as f:
        f.write(data)
    return pyc


def _pycs(directory) -> list:
    return [os.path.join(r, n) for r, _, names in os.walk(directory) for n in names if n.endswith(".pyc")]


def test_planted_bytecode_is_never_run(private, tmp_path):
    """Item 1a: a .pyc for a cached kernel, with a header matching its .py, whose code writes
    42 (and a marker file): graphc runs the checked source, never the bytecode."""
    sources = _run()
    assert _pycs(private) == [], "graphc wrote bytecode into the cache directory"
    marker = tmp_path / "foreign-code-ran"
    for source in sources:
        foreign = f"open({str(marker)!r}, 'w').close()\n" + re.sub(r"(o\d+\[[^\]\n]*\]) = ", r"\1 = 42.0 + 0 * ",
                                                                      source)
        _plant_pyc(_kernel_file(private, source), foreign)
    _run()  # results right
    assert not marker.exists(), "the planted bytecode ran"


def test_corrupt_bytecode_does_not_break_compiles(private):
    """Item 3: a .pyc with a valid header and a garbage body (once: ValueError: bad marshal
    data on every compile) is never read."""
    sources = _run()
    for source in sources:
        _plant_pyc(_kernel_file(private, source), None, body=b"\xff\x00garbage" * 20)
    _run()
    _run()


def _unkeyed_seal(files) -> str:
    """The seal as graphc wrote it before seals were keyed: anyone could compute it."""
    import hashlib
    lines = []
    for path in files:
        with open(path, "rb") as f:
            lines.append(f"{os.path.basename(path)} {hashlib.sha256(f.read()).hexdigest()}")
    return "\n".join(lines) + "\n"


class _Foreign:
    """Unpickling this runs code (writes a marker file), as a planted numba index would."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_forged_unkeyed_seal_over_planted_numba_files(private, tmp_path):
    """Item 1b: numba files replaced by a pickle that runs code, with a seal computed the old
    (unkeyed) way: the seal is not valid, the files are deleted, the kernel compiled afresh."""
    sources = _run()
    marker = tmp_path / "foreign-pickle-ran"
    planted = pickle.dumps(_Foreign(marker))
    targets = []
    for source in sources:
        key = cache.kernel_key(source)
        files = cache._numba_files(str(private), key)
        index = [f for f in files if ".kernel-" in os.path.basename(f) and f.endswith(".nbi")]
        assert index, files
        with open(index[0], "wb") as f:
            f.write(planted)
        targets.append(index[0])
        (private / key[:2] / f"k_{key}.seal").write_text(_unkeyed_seal(files))
    _run()
    assert not marker.exists(), "a planted numba cache file was unpickled"
    for path in targets:
        assert not os.path.exists(path) or open(path, "rb").read() != planted, f"{path} was kept"
    assert all(cache.is_cached(source) for source in sources)  # recompiled and sealed with the key


def test_truncated_sealed_numba_data_recompiles(private):
    """Item 1c: a truncated .nbc sealed by someone holding the key (a crash between numba's
    write and ours, say) makes numba raise while loading it: that kernel is compiled afresh."""
    sources = _run()
    n = 0
    for source in sources:
        for path in cache._numba_files(str(private), cache.kernel_key(source)):
            if path.endswith(".nbc"):
                size = os.path.getsize(path)
                with open(path, "r+b") as f:
                    f.truncate(size // 2)
                n += 1
        cache.seal(source)
        assert cache.is_cached(source)
    assert n >= len(sources)
    _run()  # no EOFError: recompiled
    _run()  # and what it left is usable


def test_seals_are_keyed_by_a_private_key_outside_the_cache(private, tmp_path, monkeypatch):
    sources = _run()
    key_file = tmp_path / "config" / "cache.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    assert not str(key_file).startswith(str(private))
    assert all(cache.is_cached(s) for s in sources)
    monkeypatch.setenv("GRAPHC_CACHE_KEY_FILE", str(tmp_path / "other.key"))  # another user's key
    assert not any(cache.is_cached(s) for s in sources)


def _compile_warned(times: int = 2) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(times):
            _run()
    return [w for w in caught if issubclass(w.category, gc.GraphcWarning)]


def _assert_fell_back(configured, warned, reason: str) -> None:
    assert len(warned) == 1, [str(w.message) for w in warned]  # once per process per directory
    message = str(warned[0].message)
    assert "GRAPHC_CACHE_DIR" in message and str(configured) in message and re.search(reason, message), message
    used = cache.cache_dir()
    assert used != str(configured) and os.path.isdir(used)
    assert any(n.startswith("k_") for _, _, names in os.walk(used) for n in names)


def test_untrusted_cache_directory_is_not_used(private):
    """A cache directory others may write is not trusted: a private temporary one is used."""
    private.mkdir()
    os.chmod(private, 0o777)
    _assert_fell_back(private, _compile_warned(), "writable by group or others")
    assert os.listdir(private) == []


@pytest.mark.parametrize("case", ["path is a file", "parent is a file"])
def test_unusable_cache_directory_falls_back(private, monkeypatch, tmp_path, case):
    """Item 6: a cache path that is a file, or under one: a warning, a private cache, right results."""
    if case == "path is a file":
        private.write_text("not a directory")
        configured = private
    else:
        (tmp_path / "file").write_text("not a directory")
        configured = tmp_path / "file" / "cache"
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(configured))
    _assert_fell_back(configured, _compile_warned(), "FileExistsError|NotADirectoryError")


def test_read_only_cache_directory_falls_back(private, monkeypatch):
    """Item 6: a read-only cache directory (faked: tests run as root, who may write anyway)."""
    private.mkdir(mode=0o700)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(private) else
                        real_access(p, mode, **kw))
    _assert_fell_back(private, _compile_warned(), "not writable")
