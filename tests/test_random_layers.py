"""Random numbers, dropout and batch normalization (the layers besides convolution): gc.random_uniform (Philox4x32-10, the same
bits in the interpreter, on the CPU and on CUDA), gc.dropout on it, gc.batch_norm in training
and inference mode; against known answers, statistics, direct numpy formulas and PyTorch where
it is installed (``pip install torch==2.13.0``)."""

import numpy as np
import pytest

from compiled import assert_outputs_close  # sets GRAPHC_CACHE_DIR first

import graphc as gc
from graphc.ir.ops import philox4x32
from graphc.passes.pipeline import plan_graph

rng = np.random.default_rng(21)


# ---------------------------------------------------------------- random_uniform


def test_philox_gives_the_random123_known_answers():
    u = np.uint64
    cases = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
             ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
             ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
              (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for counter, key, expected in cases:
        got = philox4x32(tuple(u(c) for c in counter), tuple(u(k) for k in key))
        assert [int(w) for w in got] == list(expected)


def _random_graph(shape, dtype, stream=0):
    g = gc.Graph("rand")
    k = g.input("k", (), "int64")
    g.output("u", gc.random_uniform(k, shape, dtype, stream))
    return g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_uniform_is_the_same_compiled_and_a_function_of_key_and_stream(dtype):
    g = _random_graph((64, 33), dtype)
    fn = gc.compile(g)
    for key in (0, 1, -1, 2**40 + 3):
        ref = gc.evaluate(g, k=np.array(key))["u"]
        np.testing.assert_array_equal(fn(k=np.array(key))["u"], ref)
        assert ref.dtype == dtype and ref.min() >= 0 and ref.max() < 1
    a, b = (gc.evaluate(g, k=np.array(k))["u"] for k in (5, 6))
    c = gc.evaluate(_random_graph((64, 33), dtype, stream=1), k=np.array(5))["u"]
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    # the numbers depend on the element's position only: a prefix of a longer draw is a shorter draw
    longer = gc.evaluate(_random_graph((64 * 33 + 10,), dtype), k=np.array(5))["u"]
    np.testing.assert_array_equal(longer[:64 * 33], a.ravel())


def test_random_uniform_looks_uniform():
    u = gc.evaluate(_random_graph((200_000,), "float64"), k=np.array(42))["u"]
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - u.size / 20) ** 2 / (u.size / 20)).sum()
    assert chi2 < 50  # 19 degrees of freedom: p < 2e-4 above 50
    lag = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(lag) < 0.01


def test_random_uniform_bad_keys_are_named():
    g = gc.Graph("bad")
    with pytest.raises(gc.DTypeError, match="key"):
        gc.random_uniform(g.input("f", ()), (2,))
    with pytest.raises(gc.ShapeError, match="scalar"):
        gc.random_uniform(g.input("v", (2,), "int64"), (2,))
    with pytest.raises(gc.DTypeError, match="float"):
        gc.random_uniform(g.input("k", (), "int64"), (2,), "int32")
    with pytest.raises(gc.GraphError, match="graph Value"):
        gc.random_uniform(3, (2,))


# ---------------------------------------------------------------- dropout


def _dropout_graph(p, shape=(32, 50), training=True):
    g = gc.Graph("drop")
    x, k = g.param("x", shape, "float64"), g.input("k", (), "int64")
    w = g.input("w", shape, "float64")
    y = gc.dropout(gc.tanh(x), p, k, stream=3, training=training)
    g.output("y", y)
    g.output("loss", gc.sum(y * w))
    return g


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_zeroes_p_of_the_elements_and_scales_the_rest(p):
    g = _dropout_graph(p, (400, 500))
    x = rng.uniform(0.5, 1, (400, 500))
    out = gc.evaluate(g, x=x, k=np.array(7), w=np.ones((400, 500)))["y"]
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.005
    np.testing.assert_allclose(out[kept], np.tanh(x)[kept] / (1 - p), rtol=1e-15)


def test_dropout_gradient_is_the_mask_scaled_and_compiled_agrees():
    g = _dropout_graph(0.3)
    grad = gc.grad(g, of="loss", wrt=["x"])
    args = {"x": rng.standard_normal((32, 50)), "k": np.array(99), "w": rng.standard_normal((32, 50))}
    ref = gc.evaluate(grad, **args)
    mask = ref["y"] != 0
    np.testing.assert_allclose(ref["grad_x"], mask * args["w"] * (1 - np.tanh(args["x"]) ** 2) / 0.7, rtol=1e-12)
    assert_outputs_close(gc.compile(grad)(**args), ref, rtol=1e-12, atol=1e-12)
    gc.check_grads(g, {k: v for k, v in args.items()}, order=2)


def test_dropout_identities_and_bad_p():
    args = {"x": rng.standard_normal((4, 5)), "k": np.array(1), "w": np.ones((4, 5))}
    for g in (_dropout_graph(0.0, (4, 5)), _dropout_graph(0.5, (4, 5), training=False)):
        np.testing.assert_array_equal(gc.evaluate(g, **args)["y"], np.tanh(args["x"]))
    everything = gc.grad(_dropout_graph(1.0, (4, 5)), of="loss", wrt=["x"])
    out = gc.evaluate(everything, **args)
    np.testing.assert_array_equal(out["y"], np.zeros((4, 5)))
    np.testing.assert_array_equal(out["grad_x"], np.zeros((4, 5)))
    g = gc.Graph("bad")
    with pytest.raises(gc.ShapeError, match=r"p must lie in \[0, 1\]"):
        gc.dropout(g.input("x", (2,)), 1.5, 0)


@pytest.mark.parametrize("remat", ["sqrt", "budget"])
def test_rematerialized_dropout_draws_the_same_mask(remat):
    g = gc.Graph("mlp")
    x, k, y = g.input("x", (64, 32)), g.input("k", (), "int64"), g.input("y", (64, 8))
    h = x
    for i in range(4):
        h = gc.dropout(gc.tanh(h @ g.param(f"w{i}", (32, 32))), 0.25, k, stream=i)
    g.output("loss", gc.mse(h @ g.param("out", (32, 8)), y))
    grad = gc.grad(g)
    args = {"x": rng.standard_normal((64, 32)).astype("float32"), "k": np.array(3),
            "y": rng.standard_normal((64, 8)).astype("float32"),
            **{f"w{i}": (0.3 * rng.standard_normal((32, 32))).astype("float32") for i in range(4)},
            "out": (0.3 * rng.standard_normal((32, 8))).astype("float32")}
    none = gc.compile(grad)
    base = none(**args)
    remat = gc.Budget(int(none.stats["peak_bytes"] * 0.7)) if remat == "budget" else remat
    assert "random_uniform" in [r["op"] for r in plan_graph(grad, remat=remat).residuals if r["how"] == "recomputed"]
    got = gc.compile(grad, remat=remat)(**args)
    for name in base:
        np.testing.assert_array_equal(got[name], base[name], err_msg=name)


# ---------------------------------------------------------------- batch_norm


def _bn_graph(shape, training=True, affine=True):
    g = gc.Graph("bn")
    x = g.param("x", shape, "float64")
    c = shape[1]
    gamma, beta = (g.param("gamma", (c,), "float64"), g.param("beta", (c,), "float64")) if affine else (None, None)
    w = g.input("w", shape, "float64")
    if training:
        r = gc.batch_norm(x, gamma, beta)
        g.output("y", r.out)
        g.output("mean", r.mean)
        g.output("var", r.var)
        g.output("var_unbiased", r.var_unbiased)
        y = r.out
    else:
        y = gc.batch_norm(x, gamma, beta, training=False, running_mean=g.input("rm", (c,), "float64"),
                          running_var=g.input("rv", (c,), "float64"))
        g.output("y", y)
    g.output("loss", gc.sum(y * w))
    return g


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 6)], ids=str)
def test_batch_norm_training_matches_the_formula(shape):
    x, w = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    out = gc.evaluate(_bn_graph(shape), x=x, w=w, gamma=gamma, beta=beta)
    axes = tuple(a for a in range(len(shape)) if a != 1)
    mu, var = x.mean(axes), x.var(axes)
    bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = (x - mu.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5) * gamma.reshape(bshape) + beta.reshape(bshape)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["mean"], mu, rtol=1e-12)
    np.testing.assert_allclose(out["var"], var, rtol=1e-12)
    n = x.size // shape[1]
    np.testing.assert_allclose(out["var_unbiased"], var * n / (n - 1), rtol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients_pass_finite_differences_and_compile(training):
    shape = (4, 3, 2, 3)
    args = {"x": rng.standard_normal(shape), "w": rng.standard_normal(shape),
            "gamma": rng.standard_normal(3), "beta": rng.standard_normal(3)}
    if not training:
        args.update(rm=rng.standard_normal(3), rv=rng.uniform(0.5, 2, 3))
    g = _bn_graph(shape, training)
    gc.check_grads(g, args, order=2)
    grad = gc.grad(g, of="loss")
    assert_outputs_close(gc.compile(grad)(**args), gc.evaluate(grad, **args), rtol=1e-11, atol=1e-11)


def test_batch_norm_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle: pip install torch==2.13.0")
    import torch.nn.functional as F
    shape = (6, 4, 3, 5)
    args = {"x": rng.standard_normal(shape) * 2, "w": rng.standard_normal(shape),
            "gamma": rng.standard_normal(4), "beta": rng.standard_normal(4)}
    grad = gc.grad(_bn_graph(shape), of="loss")
    out = gc.evaluate(grad, **args)
    t = {k: torch.tensor(v, requires_grad=k != "w") for k, v in args.items()}
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    ty = F.batch_norm(t["x"], rm, rv, t["gamma"], t["beta"], training=True, momentum=1.0)
    (ty * t["w"]).sum().backward()
    np.testing.assert_allclose(out["y"], ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["var_unbiased"], rv.numpy(), rtol=1e-12)  # momentum 1: the batch's own
    for k in ("x", "gamma", "beta"):
        np.testing.assert_allclose(out[f"grad_{k}"], t[k].grad.numpy(), rtol=1e-9, atol=1e-10)


def test_batch_norm_bad_arguments_are_named():
    g = gc.Graph("bad")
    x = g.input("x", (4, 3, 2, 2))
    with pytest.raises(gc.ShapeError, match=r"gamma must have shape \(3,\)"):
        gc.batch_norm(x, g.param("gamma", (4,)))
    with pytest.raises(gc.ShapeError, match="needs the statistics"):
        gc.batch_norm(x, training=False)
    with pytest.raises(gc.ShapeError, match="only with training=False"):
        gc.batch_norm(x, running_mean=g.input("m", (3,)), running_var=g.input("v", (3,)))
    with pytest.raises(gc.ShapeError, match="channel axis"):
        gc.batch_norm(g.input("flat", (5,)))
    with pytest.raises(gc.DTypeError, match="float"):
        gc.batch_norm(g.input("i", (2, 3), "int32"))
