"""``pow`` by a constant exponent, strength-reduced in the kernels (``codegen/powers.py``):
against the reference interpreter (IEEE special values exactly, signed zeros included) and
against the exact power (a rational computed by Python's ``fractions``, then rounded), in
float32 and float64, on the CPU; the CUDA kernels run the op cases in test_compile_ops.py."""

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from compiled import CACHE_DIR  # noqa: F401  (sets GRAPHC_CACHE_DIR first)

import graphc as gc

INTEGER_EXPONENTS = (0, 1, 2, 3, 4, 5, 7, 8, 15, 16, -1, -2, -3, -5, -16)
EXPONENTS = INTEGER_EXPONENTS + (0.5, -0.5, 1.5, -1.5, 2.5, -7.5)
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, -2.0, 1e-30, -1e-30, 1e30, -3.5, 1e-300, 5e-324,
            1.7e308, 1e-19, -3e-20]
# ulps from the exact power, by dtype: float32 is rounded once from float64 (correctly rounded
# but within 2^-48 of a tie); float64 carries each product's error (faithful, as libm's pow)
ULPS = {"float32": 0.5 + 1e-6, "float64": 1.0}


def _arguments(dtype, n=400):
    rng = np.random.default_rng(7)
    wide = np.exp(rng.uniform(-60, 60, n)) * rng.choice([-1, 1], n)
    with np.errstate(over="ignore"):
        return np.concatenate([SPECIALS, rng.standard_normal(n) * 3, wide]).astype(dtype)


def _powers_graph(dtype, size, exponents=EXPONENTS):
    g = gc.Graph(f"powers_{dtype}")
    x = g.input("x", (size,), dtype)
    for k, c in enumerate(exponents):
        g.output(f"p{k}", x ** c)
    return g


def _exact(x: float, c) -> float:
    """x ** c correctly rounded to float64 (finite, nonzero x), or None when it overflows."""
    if not float(c).is_integer():  # n + 1/2: in 60 digits
        getcontext().prec = 60
        return float(Decimal(x) ** Decimal(c))
    try:
        return float(Fraction(x) ** int(c))
    except OverflowError:
        return None


def _ulps(got, exact, dtype) -> float:
    """|got - exact| in ulps of ``dtype`` at ``exact`` (exact: a float64)."""
    if exact is None or not math.isfinite(exact) or abs(exact) >= float(np.finfo(dtype).max):
        return 0.0 if np.isinf(got) else float("inf")
    rounded = np.asarray(exact, dtype)
    spacing = float(np.spacing(np.abs(rounded).astype(dtype)))
    if spacing == 0:
        spacing = float(np.finfo(dtype).smallest_subnormal)
    return abs(float(got) - exact) / spacing


@pytest.fixture(scope="module", params=["float32", "float64"])
def powers(request):
    dtype = request.param
    xs = _arguments(dtype)
    g = _powers_graph(dtype, xs.size)
    fn = gc.compile(g)
    return dtype, xs, fn, fn(x=xs), gc.evaluate(g, x=xs)


def test_special_values_are_the_references(powers):
    """NaN stays NaN (but x ** 0 is 1), x**2 of a negative is positive, 0**-1 is inf, -0**-1 is
    -inf, and -0 and -inf to the +-0.5 are what pow gives, not what sqrt gives."""
    dtype, xs, _, got, expected = powers
    for k, c in enumerate(EXPONENTS):
        a, e = got[f"p{k}"], expected[f"p{k}"]
        special = ~np.isfinite(e) | (e == 0) | ~np.isfinite(xs) | (xs == 0)
        assert a.dtype == e.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a[special], e[special], err_msg=f"x ** {c} on special values ({dtype})")
        np.testing.assert_array_equal(np.signbit(a[special]), np.signbit(e[special]),
                                      err_msg=f"sign of x ** {c} on special values ({dtype})")
    p = dict(zip(EXPONENTS, (got[f"p{k}"] for k in range(len(EXPONENTS)))))
    at = {float(v): i for i, v in enumerate(xs[:len(SPECIALS)]) if not np.isnan(v) and v != 0}
    assert np.isnan(p[3][4]) and p[0][4] == 1  # NaN ** 3, NaN ** 0
    assert p[2][at[-2.0]] == 4 and p[-1][0] == np.inf and p[-1][1] == -np.inf and p[-2][1] == np.inf
    assert p[0.5][1] == 0 and not np.signbit(p[0.5][1]) and p[0.5][3] == np.inf and p[-0.5][3] == 0


def test_finite_powers_are_within_an_ulp_of_the_exact_power(powers):
    dtype, xs, _, got, _ = powers
    for k, c in enumerate(EXPONENTS):
        bound = ULPS[dtype]
        worst = max((_ulps(got[f"p{k}"][i], _exact(float(x), c), dtype), float(x))
                    for i, x in enumerate(xs) if np.isfinite(x) and x != 0 and not (c % 1 and x < 0))
        assert worst[0] <= bound, f"{dtype} x ** {c}: {worst[0]:.3f} ulps from the exact power at x = {worst[1]!r}"


def test_reduced_powers_leave_no_pow_call_in_the_kernels(powers):
    _, _, fn, _, _ = powers
    assert fn.kernels and not any("**" in ks.source for ks in fn.kernels.values())


def test_other_exponents_keep_the_pow_call_and_match():
    xs = _arguments("float32", 50)
    g = _powers_graph("float32", xs.size, (0.25, 17, -16.75))
    fn = gc.compile(g)
    assert any("**" in ks.source for ks in fn.kernels.values())
    got, expected = fn(x=xs), gc.evaluate(g, x=xs)
    for k in range(3):
        np.testing.assert_array_equal(np.isnan(got[f"p{k}"]), np.isnan(expected[f"p{k}"]))
        np.testing.assert_allclose(got[f"p{k}"], expected[f"p{k}"], rtol=2e-7, atol=0)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_powers_wrap_as_numpy(dtype):
    info = np.iinfo(dtype)
    xs = np.array([0, 1, -1, 2, -3, 7, 123457, info.max // 3, info.min, info.max], dtype)
    g = gc.Graph("ints")
    x = g.input("x", xs.shape, dtype)
    for k, n in enumerate((0, 1, 3, 5, 16)):
        g.output(f"p{k}", x ** g.const(np.array(n, dtype)))
    fn = gc.compile(g)
    assert not any("**" in ks.source for ks in fn.kernels.values())
    got, expected = fn(x=xs), gc.evaluate(g, x=xs)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name, strict=True)


def test_powers_from_gradients_and_loaded_files_are_reduced_too(tmp_path):
    """pow's gradient rule makes ``3 * x ** 2``; a saved file keeps ``pow`` by a constant."""
    g = gc.Graph("cube")
    x = g.input("x", (64,))
    g.output("loss", gc.sum(x ** 3 + x ** -0.5))
    gc.save(g, tmp_path / "cube.json")
    dg = gc.grad(gc.load(tmp_path / "cube.json"), of="loss", wrt=["x"])
    fn = gc.compile(dg)
    assert not any("**" in ks.source for ks in fn.kernels.values())
    xs = np.linspace(0.25, 4, 64, dtype=np.float32)
    np.testing.assert_allclose(fn(x=xs)["grad_x"], 3 * xs.astype(np.float64) ** 2 - 0.5 * xs.astype(np.float64) ** -1.5,
                               rtol=1e-6)
