"""Shared helpers for the compiler tests (``gc.compile``).

Importing this module points ``GRAPHC_CACHE_DIR`` at a fresh temporary directory for the whole
test session, and ``GRAPHC_CACHE_KEY_FILE`` (the seals' key) at one beside it, so compiled
kernels never touch the user's cache or key (both are removed at exit). It also holds the comparison helpers: compiled results are always checked against the
reference interpreter ``gc.evaluate`` (or plain numpy), never against compiled code.

    from compiled import CACHE_DIR, assert_close, assert_outputs_close, check_graph
"""

import atexit
import os
import shutil
import tempfile

import numpy as np

CACHE_DIR = tempfile.mkdtemp(prefix="graphc-test-cache-")
os.environ["GRAPHC_CACHE_DIR"] = CACHE_DIR
os.environ["GRAPHC_CACHE_KEY_FILE"] = os.path.join(CACHE_DIR + "-key", "cache.key")  # the seal's key: not the user's
atexit.register(shutil.rmtree, CACHE_DIR + "-key", ignore_errors=True)
atexit.register(shutil.rmtree, CACHE_DIR, ignore_errors=True)

import graphc as gc  # noqa: E402  (after the cache directory is set)

# relative tolerances of compiled against reference results, by dtype: a few ulps of float32
# (numba's libm and numpy's SIMD float32 functions differ by an ulp or two), and near-exact float64
RTOL = {"float32": 1e-5, "float64": 1e-12}


def assert_close(actual, expected, what="array", rtol=None, atol=None) -> None:
    """Same dtype and shape; ints and bools exactly equal; floats equal within ``rtol`` (per
    element) plus ``atol`` (default: ``rtol`` times the largest finite magnitude of ``expected``,
    so that values cancelled to near zero are judged on the array's scale). NaN must match NaN
    and infinities must match exactly."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert isinstance(actual, np.ndarray), f"{what}: not an ndarray"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)
        return
    rtol = RTOL[expected.dtype.name] if rtol is None else rtol
    if atol is None:
        finite = np.abs(expected[np.isfinite(expected)])
        atol = rtol * float(finite.max()) if finite.size else 0.0
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN positions")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def assert_outputs_close(actual: dict, expected: dict, rtol=None, atol=None, what="") -> None:
    """Two ``{output: array}`` results: same names, and every array close (``assert_close``)."""
    assert sorted(actual) == sorted(expected), f"{what}output names {sorted(actual)} != {sorted(expected)}"
    for name in expected:
        assert_close(actual[name], expected[name], f"{what}output {name!r}", rtol=rtol, atol=atol)


def check_graph(graph, args: dict, rtol=None, atol=None, fuse=(True, False)) -> dict:
    """Compile ``graph`` (fused and unfused by default), run it on ``args`` and compare every
    output with the reference interpreter. Returns ``{fuse flag: executable}``."""
    expected = gc.evaluate(graph, **args)
    fns = {}
    for flag in fuse:
        fn = gc.compile(graph, fuse=flag)
        got = fn(**args)
        assert_outputs_close(got, expected, rtol=rtol, atol=atol, what=f"fuse={flag}: ")
        fns[flag] = fn
    return fns


def copies(args: dict) -> dict:
    """Deep copies of call arguments (to check that a call leaves its inputs alone)."""
    return {k: np.array(v, copy=True) for k, v in args.items()}
