"""``fn.run(arrays, out={...})``: outputs written into the caller's arrays, checked first."""

import numpy as np
import pytest

import compiled  # noqa: F401  (a private kernel cache for the tests)
import graphc as gc

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def fn():
    g = gc.Graph("outs")
    x = g.input("x", (4, 5), "float64")
    y = gc.exp(x) * 2
    g.output("y", y)
    g.output("y_again", y)
    g.output("s", gc.sum(y, axis=1))
    g.output("x_t", x.T)
    return gc.compile(g)


def test_outputs_land_in_the_callers_arrays(fn):
    x = RNG.standard_normal((4, 5))
    expected = fn(x=x)
    bufs = {"y": np.empty((4, 5)), "s": np.empty(4), "x_t": np.empty((5, 4)), "y_again": np.empty((4, 5))}
    got = fn.run({"x": x}, out=bufs)
    for name, buf in bufs.items():
        assert got[name] is buf
        np.testing.assert_array_equal(buf, expected[name])
    assert not np.shares_memory(bufs["x_t"], x)


def test_outputs_without_a_buffer_still_alias_nothing(fn):
    x = RNG.standard_normal((4, 5))
    y = np.empty((4, 5))
    got = fn.run({"x": x}, out={"y": y})
    assert got["y"] is y
    assert not np.shares_memory(got["y_again"], y)
    np.testing.assert_array_equal(got["y_again"], y)


@pytest.mark.parametrize("out, error, words", [
    ({"nope": np.empty(4)}, gc.ArgumentError, "nope"),
    ({"y": np.empty((4, 5), np.float32)}, gc.DTypeError, "float64"),
    ({"y": np.empty((5, 4))}, gc.ShapeError, "(4, 5)"),
    ({"y": np.empty((5, 4)).T}, gc.ArgumentError, "contiguous"),
    ({"y": [[0.0] * 5] * 4}, gc.ArgumentError, "numpy array"),
])
def test_bad_out_buffers_are_refused_naming_the_output(fn, out, error, words):
    with pytest.raises(error, match="y|nope") as info:
        fn.run({"x": RNG.standard_normal((4, 5))}, out=out)
    assert words in str(info.value)


def test_out_buffers_may_not_overlap_inputs_or_each_other(fn):
    x = RNG.standard_normal((4, 5))
    with pytest.raises(gc.ArgumentError, match="shares memory with input 'x'"):
        fn.run({"x": x}, out={"y": x})
    buf = np.empty((2, 4, 5))
    with pytest.raises(gc.ArgumentError, match="shares memory"):
        fn.run({"x": x}, out={"y": buf[0], "y_again": buf[0]})


def test_the_overlap_sweep_finds_what_pairwise_checks_find():
    """The linear sweep over memory extents reports an overlap exactly when some pair with an
    out in it shares memory by np.may_share_memory, and names such a pair."""
    import itertools
    import random

    from graphc.runtime.executable import _first_overlap

    base, rng = np.zeros(100), random.Random(0)
    for _ in range(2000):
        arrays = []
        for k in range(rng.randint(1, 6)):
            lo = rng.randint(0, 99)
            arrays.append((f"a{k}", base[lo:rng.randint(lo, 100)], rng.random() < 0.5))
        expected = any((p[2] or q[2]) and np.may_share_memory(p[1], q[1])
                       for p, q in itertools.combinations(arrays, 2))
        found = _first_overlap(arrays)
        assert (found is not None) == expected, arrays
        if found:
            named = {what: (a, is_out) for what, a, is_out in arrays}
            (a, is_out), (b, _) = named[found[0]], named[found[1]]
            assert is_out and found[0] != found[1] and np.may_share_memory(a, b)
