"""Composite ops (softmax, losses, layer_norm, gelu, linear) against independent numpy float64
implementations, plus worked examples computed by hand."""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.examples import two_layer


def run(fn, *arrays):
    g = gc.Graph("t")
    vals = [g.input(f"a{i}", np.shape(a), np.asarray(a).dtype.name) for i, a in enumerate(arrays)]
    g.output("out", fn(*vals))
    return gc.evaluate(g, **{f"a{i}": a for i, a in enumerate(arrays)})["out"]


# ---------------------------------------------------------------- independent numpy references


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


def np_svm_loss(scores, labels, margin=1.0):
    """cs231n's loop form: sum over j != y of max(0, s_j - s_y + margin), averaged over N."""
    total = 0.0
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            if j != labels[i]:
                total += max(0.0, scores[i, j] - scores[i, labels[i]] + margin)
    return total / scores.shape[0]


def np_layer_norm(x, gamma=None, beta=None, axis=-1, eps=1e-5):
    mu = x.mean(axis=axis, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axis, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    return y if beta is None else y + beta


def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_gelu_exact(x):
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel()]).reshape(x.shape)


RTOL = {"float32": 2e-5, "float64": 1e-12}


# ---------------------------------------------------------------- softmax family


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax(dtype, axis):
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(dtype) * 3
    out = run(lambda v: gc.softmax(v, axis=axis), x)
    assert out.dtype == np.dtype(dtype) and out.shape == x.shape
    np.testing.assert_allclose(out, np_softmax(x.astype(np.float64), axis), rtol=RTOL[dtype], atol=1e-7)
    np.testing.assert_allclose(out.sum(axis=axis), 1.0, rtol=1e-5 if dtype == "float32" else 1e-13)
    assert (out > 0).all()


def test_softmax_default_axis_is_last_and_by_hand():
    x = np.array([[0.0, math.log(3.0)], [1.0, 1.0]])
    out = run(gc.softmax, x)
    np.testing.assert_allclose(out, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_huge_logits(dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0], [-1000.0, -1000.0, 1000.0]], dtype)
    out = run(gc.softmax, x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3] * 3, [0, 0, 1]], rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax(dtype, axis):
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(dtype) * 4
    out = run(lambda v: gc.log_softmax(v, axis=axis), x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, np.log(np_softmax(x.astype(np.float64), axis)), rtol=RTOL[dtype], atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_huge_logits_is_stable(dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]], dtype)
    out = run(gc.log_softmax, x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.0, -1000.0, -2000.0], [-math.log(3)] * 3], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (1, False), (-1, True), (0, False),
                                           ((0, 1), False)])
def test_logsumexp(axis, keepdims):
    x = np.random.default_rng(2).normal(size=(3, 5)) * 5
    out = run(lambda v: gc.logsumexp(v, axis=axis, keepdims=keepdims), x)
    expected = np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))  # direct: no overflow at this size
    assert out.shape == expected.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_logsumexp_huge_values():
    x = np.array([[1000.0, 1000.0], [-1000.0, 0.0]])
    out = run(lambda v: gc.logsumexp(v, axis=1), x)
    np.testing.assert_allclose(out, [1000.0 + math.log(2.0), math.log1p(math.exp(-1000.0))], rtol=1e-14)
    assert np.isfinite(out).all()


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_cross_entropy(dtype, label_dtype):
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(8, 5)) * 3).astype(dtype)
    labels = rng.integers(0, 5, size=8).astype(label_dtype)
    out = run(gc.cross_entropy, logits, labels)
    lsm = np_log_softmax(logits.astype(np.float64))
    expected = -np.mean(lsm[np.arange(8), labels])
    assert out.shape == () and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype])


def test_cross_entropy_uniform_logits_is_log_classes_and_huge_logits_are_finite():
    out = run(gc.cross_entropy, np.zeros((4, 10)), np.array([0, 3, 9, 5]))
    np.testing.assert_allclose(out, math.log(10), rtol=1e-14)
    logits = np.array([[1000.0, -1000.0], [1000.0, -1000.0]])
    out = run(gc.cross_entropy, logits, np.array([0, 1]))
    np.testing.assert_allclose(out, (0.0 + 2000.0) / 2, rtol=1e-12)


def test_cross_entropy_over_leading_batch_axes():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 4))
    labels = rng.integers(0, 4, size=(2, 3))
    out = run(gc.cross_entropy, logits, labels)
    lsm = np_log_softmax(logits)
    expected = -np.mean(np.take_along_axis(lsm, labels[..., None], axis=-1))
    np.testing.assert_allclose(out, expected, rtol=1e-13)


@pytest.mark.parametrize("fn", [gc.cross_entropy, gc.svm_loss])
@pytest.mark.parametrize("bad", [5, -1])
def test_loss_label_out_of_range_is_data_error(fn, bad):
    g = gc.Graph("t")
    s, y = g.input("s", (3, 5)), g.input("y", (3,), "int64")
    g.output("loss", fn(s, y))
    with pytest.raises(gc.DataError):
        gc.evaluate(g, s=np.zeros((3, 5), np.float32), y=np.array([0, bad, 1]))


def test_svm_loss_cs231n_worked_example():
    # cs231n lecture 3: cat/car/frog scores, losses 2.9, 0 and 12.9
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])  # one row per example
    labels = np.array([0, 1, 2])
    out = run(gc.svm_loss, scores, labels)
    np.testing.assert_allclose(out, (2.9 + 0.0 + 12.9) / 3, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_svm_loss(dtype, margin):
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(10, 6)).astype(dtype)
    labels = rng.integers(0, 6, size=10)
    out = run(lambda s, y: gc.svm_loss(s, y, margin=margin), scores, labels)
    assert out.shape == () and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, np_svm_loss(scores.astype(np.float64), labels, margin), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mse(dtype):
    rng = np.random.default_rng(6)
    p, t = rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(4, 3)).astype(dtype)
    out = run(gc.mse, p, t)
    assert out.shape == () and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, np.mean((p.astype(np.float64) - t) ** 2), rtol=RTOL[dtype])
    assert run(gc.mse, np.array([1.0, 2.0]), np.array([3.0, 2.0])) == 2.0


@pytest.mark.parametrize("lam", [1.0, 0.5, 1e-3])
def test_l2_regularization(lam):
    w = np.random.default_rng(7).normal(size=(5, 4))
    out = run(lambda v: gc.l2_regularization(v, lam), w)
    np.testing.assert_allclose(out, lam * np.sum(w * w), rtol=1e-13)
    assert run(lambda v: gc.l2_regularization(v, 0.5), np.array([[1.0, 2.0], [3.0, 4.0]])) == 15.0


def test_l2_regularization_default_strength_float32():
    w = np.array([1.0, -2.0, 0.5], np.float32)
    out = run(gc.l2_regularization, w)
    assert out.dtype == np.float32 and out == np.float32(5.25)


# ---------------------------------------------------------------- layer_norm, gelu, linear


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", ["none", "gamma", "beta", "both"])
def test_layer_norm(dtype, affine):
    rng = np.random.default_rng(8)
    x = (rng.normal(size=(4, 6)) * 3 + 1).astype(dtype)
    gamma = rng.normal(size=6).astype(dtype)
    beta = rng.normal(size=6).astype(dtype)
    use_g, use_b = affine in ("gamma", "both"), affine in ("beta", "both")

    def fn(xv, gv, bv):
        return gc.layer_norm(xv, gv if use_g else None, bv if use_b else None)

    out = run(fn, x, gamma, beta)
    expected = np_layer_norm(x.astype(np.float64), gamma.astype(np.float64) if use_g else None,
                             beta.astype(np.float64) if use_b else None)
    assert out.dtype == np.dtype(dtype) and out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype] * 5, atol=1e-5 if dtype == "float32" else 1e-12)
    if affine == "none":
        np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-5 if dtype == "float32" else 1e-13)


def test_layer_norm_other_axis_and_eps():
    x = np.random.default_rng(9).normal(size=(5, 3))
    out = run(lambda v: gc.layer_norm(v, axis=0, eps=1e-3), x)
    np.testing.assert_allclose(out, np_layer_norm(x, axis=0, eps=1e-3), rtol=1e-12, atol=1e-14)


def test_layer_norm_by_hand():
    out = run(lambda v: gc.layer_norm(v, eps=0.0), np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(out, [[-1.0, 1.0]], rtol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_tanh_form(dtype):
    x = np.linspace(-6, 6, 49).astype(dtype)
    out = run(gc.gelu, x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, np_gelu_tanh(x.astype(np.float64)), rtol=RTOL[dtype], atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_exact_form(dtype):
    x = np.linspace(-6, 6, 49).astype(dtype)
    out = run(lambda v: gc.gelu(v, approximate=False), x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, np_gelu_exact(x.astype(np.float64)), rtol=RTOL[dtype], atol=1e-6)
    # the two forms agree to about 1e-3 (Hendrycks & Gimpel)
    np.testing.assert_allclose(np_gelu_tanh(x.astype(np.float64)), out, atol=2e-3)


def test_gelu_known_values():
    out = run(lambda v: gc.gelu(v, approximate=False), np.array([0.0, 1.0, -1.0]))
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # 0.8413447460685429
    np.testing.assert_allclose(out, [0.0, phi1, -(1 - phi1)], rtol=1e-15)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear(with_bias, dtype):
    rng = np.random.default_rng(10)
    x, w, b = (rng.normal(size=s).astype(dtype) for s in ((4, 3), (3, 5), (5,)))
    out = run(lambda xv, wv, bv: gc.linear(xv, wv, bv if with_bias else None), x, w, b)
    expected = x.astype(np.float64) @ w.astype(np.float64) + (b.astype(np.float64) if with_bias else 0)
    assert out.dtype == np.dtype(dtype) and out.shape == (4, 5)
    np.testing.assert_allclose(out, expected, rtol=RTOL[dtype], atol=1e-6)


# ---------------------------------------------------------------- worked examples


def test_worked_example_x_plus_y_times_z():
    g = gc.Graph("f")
    x, y, z = g.input("x", ()), g.input("y", ()), g.input("z", ())
    g.output("f", (x + y) * z)
    out = gc.evaluate(g, x=-2.0, y=5.0, z=-4.0)["f"]
    assert out == -12.0 and out.dtype == np.float32


def test_worked_example_sigmoid_neuron():
    g = gc.Graph("neuron")
    w = g.param("w", (3,), "float64")
    x = g.input("x", (2,), "float64")
    g.output("f", 1 / (1 + gc.exp(-(w[0] * x[0] + w[1] * x[1] + w[2]))))
    g.output("s", gc.sigmoid(w[0] * x[0] + w[1] * x[1] + w[2]))
    out = gc.evaluate(g, w=np.array([2.0, -3.0, -3.0]), x=np.array([-1.0, -2.0]))
    assert abs(out["f"] - 0.7311) < 1e-4 and abs(out["s"] - 0.7311) < 1e-4
    np.testing.assert_allclose(out["f"], 1 / (1 + math.exp(-1.0)), rtol=1e-15)


def test_worked_example_two_layer_net_float64():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(64, 1000)), rng.normal(size=(64, 10))
    w1, w2 = rng.normal(size=(1000, 100)) * 0.03, rng.normal(size=(100, 10))
    g = two_layer(dtype="float64")
    out = gc.evaluate(g, x=x, y=y, w1=w1, w2=w2)["loss"]
    h = 1 / (1 + np.exp(-(x @ w1)))
    expected = np.sum((h @ w2 - y) ** 2)
    assert out.dtype == np.float64 and out.shape == ()
    np.testing.assert_allclose(out, expected, rtol=1e-10)
