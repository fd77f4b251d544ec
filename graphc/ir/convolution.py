"""Convolution and pooling (NCHW, PyTorch's semantics), built from primitives: a ``pad``, the
``windows`` view (im2col without a copy), and a matmul or a reduction over the windows.

A convolution is one matmul of the weight, (O, C*kh*kw), by the windows laid out as columns,
(C*kh*kw, N*Ho*Wo): its result (O, N, Ho, Wo) is the output with its first two axes swapped,
so what reads it (a bias, an activation) reads whole rows in order. Its input gradient is a
matmul and a ``fold`` (col2im, the transpose of ``windows``), its weight gradient one matmul;
both follow from the primitives' rules, so second order works. The copy of the windows into
columns is made by the layout pass (a reshape of a strided view), as a loop kernel writing a
planned buffer.
"""

import math

import numpy as np

from ..errors import DTypeError, ShapeError
from . import dtypes as dt
from .build import (_per_axis, _value, argmax, matmul, mean, pad, reshape, take_along_axis, transpose, where,
                    windows)


def _spatial(op: str, x):
    if x.ndim != 4:
        raise ShapeError(f"{op}: input must be (N, C, H, W), got shape {x.shape}")
    if not dt.is_float(x.dtype):
        raise DTypeError(f"{op}: input must be float, got {x.dtype}")
    return x.shape[2:]


def _padding(op: str, padding, window, dilation, strides) -> tuple:
    """(low, high) per spatial axis from an int, a pair, "valid" or "same" (stride 1 only; an
    odd total puts the extra element after, as PyTorch does)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ShapeError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in strides):
            raise ShapeError(f"{op}: padding='same' needs stride 1, got stride {strides}")
        total = [d * (w - 1) for w, d in zip(window, dilation)]
        low = tuple(t // 2 for t in total)
        return low, tuple(t - lo for t, lo in zip(total, low))
    both = _per_axis(op, "padding", padding, 2)
    if min(both) < 0:
        raise ShapeError(f"{op}: padding {padding!r} is negative")
    return both, both


def _windows_of(op: str, x, window, strides, dilation, low, high, fill=0.0):
    """The windows of ``x`` padded by ``fill``, shape (N, C, kh, kw, Ho, Wo); a window that
    does not fit the padded input is a ShapeError naming ``op``."""
    padded = tuple(n + lo + hi for n, lo, hi in zip(x.shape[2:], low, high))
    for axis, (n, w, d) in enumerate(zip(padded, window, dilation)):
        if d * (w - 1) + 1 > n:
            raise ShapeError(f"{op}: kernel {tuple(window)} (dilation {tuple(dilation)}) is larger than the padded "
                             f"input {padded} (input {x.shape[2:]}, padding {tuple(low)} / {tuple(high)})")
    if any(low) or any(high):
        xp = pad(x, (0, 0) + tuple(low), (0, 0) + tuple(high))
        if fill != 0:
            inside = np.zeros(padded, bool)
            inside[tuple(slice(lo, lo + n) for lo, n in zip(low, x.shape[2:]))] = True
            xp = where(x.graph.const(inside), xp, fill)
        x = xp
    return windows(x, window, strides, dilation)


def conv2d(x, w, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.functional.conv2d`` (no bias: add it): ``x`` (N, C, H, W), ``w`` (O, C / groups,
    kh, kw) -> (N, O, Ho, Wo). ``padding``: an int, a pair, "valid" or "same"."""
    x, w = _value("conv2d", x), _value("conv2d", w)
    _spatial("conv2d", x)
    if w.ndim != 4:
        raise ShapeError(f"conv2d: weight must be (O, C / groups, kh, kw), got shape {w.shape}")
    if w.dtype != x.dtype:
        raise DTypeError(f"conv2d: input dtype {x.dtype} and weight dtype {w.dtype} differ")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ShapeError(f"conv2d: groups must be a positive int, got {groups!r}")
    (n, c), (o, cg, kh, kw) = x.shape[:2], w.shape
    if c % groups or o % groups:
        raise ShapeError(f"conv2d: channels in ({c}) and out ({o}) must both be divisible by groups ({groups})")
    if cg != c // groups:
        raise ShapeError(f"conv2d: weight {w.shape} needs C / groups = {c // groups} input channels, got {cg}")
    strides, dilation = _per_axis("conv2d", "stride", stride, 2), _per_axis("conv2d", "dilation", dilation, 2)
    low, high = _padding("conv2d", padding, (kh, kw), dilation, strides)
    win = _windows_of("conv2d", x, (kh, kw), strides, dilation, low, high)  # (N, C, kh, kw, Ho, Wo)
    ho, wo = win.shape[4:]
    cols = transpose(win, (1, 2, 3, 0, 4, 5))  # (C, kh, kw, N, Ho, Wo): rows of K = C*kh*kw
    k, p = cg * kh * kw, n * ho * wo
    if groups == 1:
        y = matmul(reshape(w, (o, k)), reshape(cols, (k, p)))
    else:  # one matmul per group, batched: (g, O / g, K / g) @ (g, K / g, N*Ho*Wo)
        y = matmul(reshape(w, (groups, o // groups, k)), reshape(cols, (groups, k, p)))
    return transpose(reshape(y, (o, n, ho, wo)), (1, 0, 2, 3))


def _pool_args(op: str, x, kernel_size, stride, padding, dilation=1):
    _spatial(op, x)
    window = _per_axis(op, "kernel_size", kernel_size, 2)
    strides = window if stride is None else _per_axis(op, "stride", stride, 2)
    dilation = _per_axis(op, "dilation", dilation, 2)
    low, high = _padding(op, padding, window, dilation, strides)
    if any(2 * p > d * (k - 1) + 1 for p, k, d in zip(low, window, dilation)):
        raise ShapeError(f"{op}: padding {tuple(low)} must be at most half the kernel {window} (dilation {dilation})")
    return window, strides, dilation, low, high


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    """``torch.nn.functional.max_pool2d`` (ceil_mode=False): the max of each window, padding
    counting as -inf. The gradient goes to one element of each window: the first maximum in
    row-major order (a NaN, if any), as PyTorch's."""
    x = _value("max_pool2d", x)
    window, strides, dilation, low, high = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation)
    win = _windows_of("max_pool2d", x, window, strides, dilation, low, high, fill=-math.inf)
    n, c, _, _, ho, wo = win.shape
    cols = reshape(transpose(win, (0, 1, 4, 5, 2, 3)), (n, c, ho, wo, window[0] * window[1]))
    return reshape(take_along_axis(cols, argmax(cols, -1, keepdims=True), -1), (n, c, ho, wo))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """``torch.nn.functional.avg_pool2d`` (ceil_mode=False, count_include_pad=True): the mean of
    each window, padding counting as zeros."""
    x = _value("avg_pool2d", x)
    window, strides, dilation, low, high = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    return mean(_windows_of("avg_pool2d", x, window, strides, dilation, low, high), (2, 3))


def flatten(x, start_dim=1, end_dim=-1):
    """``torch.flatten``: axes ``start_dim`` .. ``end_dim`` merged into one."""
    x = _value("flatten", x)
    lo, hi = (d + x.ndim if d < 0 else d for d in (start_dim, end_dim))
    if not 0 <= lo <= hi < max(x.ndim, 1):
        raise ShapeError(f"flatten: dims {start_dim}..{end_dim} do not fit shape {x.shape}")
    return reshape(x, x.shape[:lo] + (math.prod(x.shape[lo:hi + 1]),) + x.shape[hi + 1:])
