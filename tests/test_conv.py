"""Convolution and pooling: gc.conv2d, gc.max_pool2d, gc.avg_pool2d and gc.flatten (built on
the windows view and its transpose fold) against direct-loop numpy oracles written here (and
PyTorch where it is installed: ``pip install torch==2.13.0``), values and gradients in float64;
compiled against the reference interpreter; remat strategies bit-identical on a CNN; the
layout pass's copies planned; bad arguments named.
"""

import itertools

import numpy as np
import pytest

from compiled import assert_outputs_close  # sets GRAPHC_CACHE_DIR first

import graphc as gc
from graphc.ir.ops import VIEWS, reshaped_strides, view_strides
from graphc.passes.fusion import StepKind
from graphc.passes.pipeline import plan_graph

rng = np.random.default_rng(13)


# ---------------------------------------------------------------- oracles: direct loops


def _pads(padding, kh, kw, dilation):
    if padding == "same":
        total = [dilation[0] * (kh - 1), dilation[1] * (kw - 1)]
        return [(t // 2, t - t // 2) for t in total]
    if padding == "valid":
        return [(0, 0), (0, 0)]
    p = (padding, padding) if isinstance(padding, int) else padding
    return [(p[0], p[0]), (p[1], p[1])]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_oracle(x, w, stride=1, padding=0, dilation=1, groups=1):
    """out[n, o, i, j] = sum over c, p, q of w[o, c, p, q] * xpad[n, g*C/g + c, i*s + p*d, j*s + q*d]."""
    stride, dilation = _pair(stride), _pair(dilation)
    n, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    (t, b), (l, r) = _pads(padding, kh, kw, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    ho = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for oc, i, j in itertools.product(range(o), range(ho), range(wo)):
        first = (oc // og) * cg
        for p, q in itertools.product(range(kh), range(kw)):
            patch = xp[:, first:first + cg, i * stride[0] + p * dilation[0], j * stride[1] + q * dilation[1]]
            out[:, oc, i, j] += patch @ w[oc, :, p, q]
    return out


def pool_oracle(x, kernel, stride=None, padding=0, dilation=1, op="max"):
    """Pooled values and the gradient of sum(pooled * dy) for dy = 1, by direct loops: max sends
    each window's gradient to its first maximum (row-major), avg spreads it over the window."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride if stride is not None else kernel)
    dh, dw = _pair(dilation)
    ph, pw = _pair(padding)
    fill = -np.inf if op == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    grad = np.zeros(xp.shape)
    for n, c, i, j in itertools.product(*(range(d) for d in out.shape)):
        cells = [(i * sh + p * dh, j * sw + q * dw) for p in range(kh) for q in range(kw)]
        vals = [xp[n, c, a, b] for a, b in cells]
        if op == "max":
            k = int(np.argmax(vals))
            out[n, c, i, j] = vals[k]
            grad[(n, c) + cells[k]] += 1
        else:
            out[n, c, i, j] = np.mean(vals)
            for a, b in cells:
                grad[n, c, a, b] += 1 / len(cells)
    return out, grad[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]


# ---------------------------------------------------------------- graphs


def conv_graph(xs, ws, dtype="float64", **kw):
    """loss = sum(conv2d(x, w) * dy), with its gradients for x and w."""
    g = gc.Graph("conv")
    x, w = g.input("x", xs, dtype), g.param("w", ws, dtype)
    y = gc.conv2d(x, w, **kw)
    dy = g.input("dy", y.shape, dtype)
    g.output("y", y)
    g.output("loss", gc.sum(y * dy))
    return gc.grad(g, of="loss", wrt=["x", "w"]), y.shape


CONVS = [
    ((2, 3, 7, 8), (4, 3, 3, 3), {}),
    ((2, 3, 7, 8), (4, 3, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 4, 9, 8), (6, 2, 3, 3), {"stride": (2, 1), "padding": (1, 2), "dilation": (2, 1), "groups": 2}),
    ((2, 2, 5, 5), (2, 2, 3, 3), {"padding": "same"}),
    ((1, 2, 6, 6), (3, 2, 4, 2), {"padding": "same", "dilation": 2}),  # even kernel: the extra pad after
    ((2, 3, 6, 5), (3, 1, 2, 2), {"groups": 3, "padding": "valid"}),  # depthwise
    ((3, 2, 4, 4), (5, 2, 1, 1), {}),  # 1x1
]


@pytest.mark.parametrize("xs,ws,kw", CONVS, ids=[str(c[2]) for c in CONVS])
def test_conv2d_values_and_gradients_match_the_direct_oracle(xs, ws, kw):
    grad, ys = conv_graph(xs, ws, **kw)
    x, w, dy = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ys)
    out = gc.evaluate(grad, x=x, w=w, dy=dy)
    np.testing.assert_allclose(out["y"], conv_oracle(x, w, **kw), rtol=1e-12, atol=1e-12)
    # both gradients by linearity: d<conv(x, w), dy>/dx[e] = <conv(e_x, w), dy>, likewise for w
    for name, arr in (("x", x), ("w", w)):
        expected = np.zeros(arr.shape)
        for index in np.ndindex(*arr.shape):
            e = np.zeros(arr.shape)
            e[index] = 1
            expected[index] = np.sum(conv_oracle(e, w, **kw) * dy if name == "x" else conv_oracle(x, e, **kw) * dy)
        np.testing.assert_allclose(out[f"grad_{name}"], expected, rtol=1e-10, atol=1e-10)
    fn = gc.compile(grad)
    assert_outputs_close(fn(x=x, w=w, dy=dy), out, rtol=1e-12, atol=1e-12)


POOLS = [
    ("max", (2, 3, 8, 8), 2, {}),
    ("max", (2, 2, 9, 7), 3, {"stride": 2, "padding": 1}),
    ("max", (1, 2, 9, 7), (3, 2), {"stride": (1, 2), "padding": (1, 1), "dilation": (2, 1)}),
    ("avg", (2, 3, 8, 8), 2, {}),
    ("avg", (2, 2, 9, 7), 3, {"stride": 2, "padding": 1}),
    ("avg", (1, 2, 6, 7), (2, 3), {"stride": (2, 1)}),
]


@pytest.mark.parametrize("op,xs,kernel,kw", POOLS, ids=[f"{p[0]}-{p[3]}" for p in POOLS])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_pooling_values_and_gradients_match_the_direct_oracle(op, xs, kernel, kw, ties):
    g = gc.Graph("pool")
    x = g.input("x", xs, "float64")
    y = (gc.max_pool2d if op == "max" else gc.avg_pool2d)(x, kernel, **kw)
    g.output("y", y)
    g.output("loss", gc.sum(y))
    grad = gc.grad(g, of="loss", wrt=["x"])
    data = rng.integers(-2, 3, xs).astype(np.float64) if ties else rng.standard_normal(xs)
    expected, dx = pool_oracle(data, kernel, op=op, **kw)
    out = gc.evaluate(grad, x=data)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["grad_x"], dx, rtol=1e-12, atol=1e-12)
    compiled = gc.compile(grad)(x=data)
    np.testing.assert_array_equal(compiled["y"], out["y"])
    np.testing.assert_array_equal(compiled["grad_x"], out["grad_x"])


def test_max_pool_propagates_nan_and_sends_its_gradient_there():
    x = np.array([[[[1.0, np.nan], [3.0, 2.0]]]])
    g = gc.Graph("nan")
    v = g.input("x", x.shape, "float64")
    y = gc.max_pool2d(v, 2)
    g.output("y", y)
    g.output("loss", gc.sum(y))
    out = gc.evaluate(gc.grad(g, of="loss", wrt=["x"]), x=x)
    assert np.isnan(out["y"]).all()
    np.testing.assert_array_equal(out["grad_x"], [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_flatten_merges_the_named_axes():
    g = gc.Graph("f")
    x = g.input("x", (2, 3, 4, 5))
    assert gc.flatten(x).shape == (2, 60)
    assert gc.flatten(x, 0, 1).shape == (6, 4, 5)
    assert gc.flatten(x, -2).shape == (2, 3, 20)
    with pytest.raises(gc.ShapeError, match="flatten"):
        gc.flatten(x, 3, 1)


@pytest.mark.parametrize("xs,ws,kw", CONVS, ids=[str(c[2]) for c in CONVS])
def test_conv2d_matches_pytorch(xs, ws, kw):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle: pip install torch==2.13.0")
    import torch.nn.functional as F
    grad, ys = conv_graph(xs, ws, **kw)
    x, w, dy = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ys)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = F.conv2d(tx, tw, **kw)
    (ty * torch.tensor(dy)).sum().backward()
    out = gc.evaluate(grad, x=x, w=w, dy=dy)
    np.testing.assert_allclose(out["y"], ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["grad_x"], tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["grad_w"], tw.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("op,xs,kernel,kw", POOLS, ids=[f"{p[0]}-{p[3]}" for p in POOLS])
def test_pooling_matches_pytorch_on_ties(op, xs, kernel, kw):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle: pip install torch==2.13.0")
    import torch.nn.functional as F
    data = rng.integers(-2, 3, xs).astype(np.float64)
    g = gc.Graph("pool")
    x = g.input("x", xs, "float64")
    y = (gc.max_pool2d if op == "max" else gc.avg_pool2d)(x, kernel, **kw)
    g.output("y", y)
    g.output("loss", gc.sum(y))
    out = gc.evaluate(gc.grad(g, of="loss", wrt=["x"]), x=data)
    tx = torch.tensor(data, requires_grad=True)
    ty = (F.max_pool2d if op == "max" else F.avg_pool2d)(tx, kernel, **kw)
    ty.sum().backward()
    np.testing.assert_allclose(out["y"], ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(out["grad_x"], tx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- a small CNN: finite differences, remat, plans


def small_cnn(n=4, dtype="float32"):
    """conv 3x3 -> relu -> 2x2 max-pool, twice, then a linear layer and cross-entropy."""
    g = gc.Graph("cnn")
    x, labels = g.input("x", (n, 1, 8, 8), dtype), g.input("labels", (n,), "int64")
    w1, b1 = g.param("w1", (4, 1, 3, 3), dtype), g.param("b1", (4, 1, 1), dtype)
    w2, b2 = g.param("w2", (6, 4, 3, 3), dtype), g.param("b2", (6, 1, 1), dtype)
    w3 = g.param("w3", (6 * 2 * 2, 3), dtype)
    h = gc.max_pool2d(gc.relu(gc.conv2d(x, w1, padding=1) + b1), 2)
    h = gc.max_pool2d(gc.relu(gc.conv2d(h, w2, padding="same") + b2), 2)
    g.output("loss", gc.cross_entropy(gc.flatten(h) @ w3, labels))
    arrays = {"x": rng.standard_normal((n, 1, 8, 8)).astype(dtype), "labels": rng.integers(0, 3, n),
              "w1": (0.5 * rng.standard_normal((4, 1, 3, 3))).astype(dtype), "b1": np.full((4, 1, 1), 0.1, dtype),
              "w2": (0.3 * rng.standard_normal((6, 4, 3, 3))).astype(dtype), "b2": np.full((6, 1, 1), 0.1, dtype),
              "w3": (0.3 * rng.standard_normal((24, 3))).astype(dtype)}
    return g, arrays


def test_a_cnn_passes_finite_differences_first_and_second_order():
    g, arrays = small_cnn(2)
    gc.check_grads(g, arrays, order=2)


@pytest.mark.parametrize("remat", ["sqrt", "mincut", "budget"])
def test_remat_strategies_are_bit_identical_on_a_cnn(remat):
    g, arrays = small_cnn()
    grad = gc.grad(g)
    base = gc.compile(grad)(**arrays)
    if remat == "budget":
        remat = gc.Budget(int(gc.compile(grad).stats["peak_bytes"] * 0.8))
    fn = gc.compile(grad, remat=remat)
    got = fn(**arrays)
    for name in base:
        np.testing.assert_array_equal(got[name], base[name], err_msg=name)
    assert_outputs_close(base, gc.evaluate(grad, **arrays), rtol=2e-5, atol=1e-6)


def test_sqrt_remat_on_a_cnn_keeps_less_and_the_profile_measures_the_plan():
    g, arrays = small_cnn(32)
    grad = gc.grad(g)
    none, sqrt = gc.compile(grad), gc.compile(grad, remat="sqrt")
    assert sqrt.stats["saved_bytes"] < none.stats["saved_bytes"]
    for fn in (none, sqrt):
        fn(**arrays)  # compiled first: the profile measures a call, not numba
        p = fn.profile(**arrays)
        assert p["planned_peak_bytes"] == fn.stats["peak_bytes"]
        assert abs(p["peak_bytes"] - p["planned_peak_bytes"]) <= 0.15 * p["planned_peak_bytes"] + 65536


def _copies_of_windows(plan) -> list:
    """The copies the layout pass put under a reshape of (a view of) a windows view."""
    found = []
    for v in plan.graph.nodes:
        if v.op == "copy":
            w = v.inputs[0]
            while w.op in VIEWS and w.op != "windows":
                w = w.inputs[0]
            if w.op == "windows":
                found.append(v)
    return found


def test_the_windows_of_a_conv_are_copied_by_a_planned_kernel():
    """The reshape of the (transposed) windows into columns cannot be a view: the layout pass
    puts a copy under it, a loop kernel writing an arena buffer, and no reshape is left for
    numpy to copy outside the plan. A 1x1 convolution of one image needs no copy."""
    grad, _ = conv_graph((2, 3, 6, 6), (4, 3, 3, 3), "float32")
    plan = plan_graph(grad)
    copies = _copies_of_windows(plan)
    assert copies
    loop_roots = {r.id for s in plan.steps if s.kind is StepKind.LOOP for r in s.roots}
    assert all(v.id in loop_roots and v.id in plan.memory.offsets for v in copies)
    for v in plan.graph.nodes:
        if v.op == "reshape":
            x = v.inputs[0]
            assert reshaped_strides(x.shape, view_strides(x), v.shape) is not None, v
    one, _ = conv_graph((1, 3, 6, 6), (4, 3, 1, 1), "float32")
    assert not _copies_of_windows(plan_graph(one))


def test_a_conv_graph_round_trips_through_text_and_json():
    g, arrays = small_cnn()
    grad = gc.grad(g)
    expected = gc.evaluate(grad, **arrays)
    for again in (gc.from_text(gc.to_text(grad)), gc.from_json(gc.to_json(grad))):
        assert_outputs_close(gc.evaluate(again, **arrays), expected, rtol=0, atol=0)
    text = gc.to_text(grad)
    assert "windows" in text and "fold" in text
    assert "windows" in gc.to_dot(grad)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("build,match", [
    (lambda x, w: gc.conv2d(x, w[:, :, :3, :3], padding=0, dilation=3), "larger than the padded input"),
    (lambda x, w: gc.conv2d(x[:, :, :2, :2], w), "larger than the padded input"),
    (lambda x, w: gc.conv2d(x, w[:3, :1], groups=2), "divisible by groups"),
    (lambda x, w: gc.conv2d(x, w[:, :1], groups=3), "divisible by groups"),
    (lambda x, w: gc.conv2d(x, w[:, :2]), "C / groups"),
    (lambda x, w: gc.conv2d(x, w, padding=-1), "negative"),
    (lambda x, w: gc.conv2d(x, w, padding=(1, -1)), "negative"),
    (lambda x, w: gc.conv2d(x, w, padding="full"), "'same' or 'valid'"),
    (lambda x, w: gc.conv2d(x, w, padding="same", stride=2), "needs stride 1"),
    (lambda x, w: gc.conv2d(x, w, stride=0), "at least 1"),
    (lambda x, w: gc.conv2d(x, w, stride=(1, 2, 3)), "stride must be an int or 2 ints"),
    (lambda x, w: gc.conv2d(x, w, groups=0), "positive int"),
    (lambda x, w: gc.conv2d(x[0], w), r"\(N, C, H, W\)"),
    (lambda x, w: gc.conv2d(x, w[0]), r"\(O, C / groups, kh, kw\)"),
    (lambda x, w: gc.conv2d(x, gc.cast(w, "float64")), "dtype"),
    (lambda x, w: gc.conv2d(gc.cast(x, "int32"), gc.cast(w, "int32")), "must be float"),
    (lambda x, w: gc.max_pool2d(x, 2, padding=2), "at most half the kernel"),
    (lambda x, w: gc.max_pool2d(x, 6), "larger than the padded input"),
    (lambda x, w: gc.avg_pool2d(x, 0), "at least 1"),
    (lambda x, w: gc.windows(x, (7, 1)), "larger than windowed axis"),
    (lambda x, w: gc.windows(x, (1, 1, 1, 1, 1)), "do not fit shape"),
    (lambda x, w: gc.fold(x, (5, 5), (2, 2)), "have shape"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_convolutions_and_windows_are_named_errors(build, match):
    g = gc.Graph("bad")
    x, w = g.input("x", (2, 3, 5, 5)), g.param("w", (4, 3, 3, 3))
    with pytest.raises(gc.ShapeError if match not in ("dtype", "must be float") else gc.DTypeError, match=match):
        build(x, w)


# ---------------------------------------------------------------- the example nets


def test_the_resnet_example_compiles_checks_and_remats_bit_identically():
    import graphc.examples as ex
    net = ex.resnet_basic(batch=4, channels=2, size=6, classes=3, width=4, blocks=1)
    arrays = {"x": rng.standard_normal((4, 2, 6, 6)).astype("float32"), "labels": rng.integers(0, 3, 4),
              **ex.init_params(net, seed=1)}
    gc.check_grads(net.select("loss"), arrays)
    grad = gc.grad(net, of="loss")
    base = gc.compile(grad)(**arrays)
    assert_outputs_close(base, gc.evaluate(grad, **arrays), rtol=1e-4, atol=1e-5)
    for remat in ("sqrt", "mincut"):
        got = gc.compile(grad, remat=remat)(**arrays)
        for name in base:
            np.testing.assert_array_equal(got[name], base[name], err_msg=f"{remat}: {name}")


def test_the_lecture_cnn_example_learns_a_separable_batch():
    """A few SGD steps on one batch of two separable classes bring the loss well down."""
    import graphc.examples as ex
    net = ex.lecture_cnn(batch=8, size=8, classes=2, widths=(4, 8))
    step = gc.compile(gc.grad(net, of="loss"))
    params = ex.init_params(net, seed=0)
    labels = np.arange(8) % 2
    x = (rng.standard_normal((8, 1, 8, 8)) * 0.1 + labels[:, None, None, None]).astype("float32")
    first = None
    for _ in range(30):
        out = step(x=x, labels=labels, **params)
        first = out["loss"] if first is None else first
        for name in params:
            params[name] -= 0.1 * out[f"grad_{name}"]
    assert out["loss"] < 0.2 * first
