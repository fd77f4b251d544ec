"""Composite ops, built from primitives so their gradients follow from the primitives' rules.

Numerically stable forms throughout: softmax and friends subtract the (gradient-stopped) max,
which changes nothing mathematically and keeps exp from overflowing. Losses reduce by the mean
over the batch (every axis but the class axis), as PyTorch and JAX libraries do by default.
"""

import builtins
import math

from ..errors import DTypeError, ShapeError
from . import dtypes as dt
from typing import NamedTuple

from .build import (add, broadcast_to, div, erf, exp, ge, log, matmul, max, mean, mul, one_hot, random_uniform,
                    relu, reshape, rsqrt, square, stop_gradient, sum, tanh, where, _value)
from .shapes import normalize_axes, reduced_shape


def _shifted(x, axes):
    """x minus its max over axes; the max is a constant for differentiation (it cancels)."""
    return x - stop_gradient(max(x, axes, keepdims=True))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis`` without overflow."""
    x = _value("logsumexp", x)
    axes = normalize_axes(axis, x.ndim, "logsumexp")
    m = stop_gradient(max(x, axes, keepdims=True))
    out = add(log(sum(exp(x - m), axes, keepdims=True)), m)
    return out if keepdims else reshape(out, reduced_shape(x.shape, axes, False))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``."""
    x = _value("softmax", x)
    e = exp(_shifted(x, normalize_axes(axis, x.ndim, "softmax")))
    return div(e, sum(e, axis, keepdims=True))


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, computed as x - max - log(sum(exp(x - max)))."""
    x = _value("log_softmax", x)
    s = _shifted(x, normalize_axes(axis, x.ndim, "log_softmax"))
    return s - log(sum(exp(s), axis, keepdims=True))


def _class_labels(op: str, scores, labels):
    scores, labels = _value(op, scores), _value(op, labels)
    if labels.dtype not in dt.INTS:
        raise DTypeError(f"{op}: labels must be integers, got {labels.dtype}")
    if not dt.is_float(scores.dtype):
        raise DTypeError(f"{op}: scores must be float, got {scores.dtype}")
    if scores.ndim < 1 or labels.shape != scores.shape[:-1]:
        raise ShapeError(f"{op}: labels shape {labels.shape} must be scores shape {scores.shape} without its last axis")
    return scores, one_hot(labels, scores.shape[-1], scores.dtype)


def cross_entropy(logits, labels):
    """Softmax cross-entropy with integer labels over the last axis, averaged over the rest.

    The gradient with respect to the logits is ``(softmax(logits) - one_hot(labels)) / N``.
    Labels must lie in [0, classes).
    """
    logits, target = _class_labels("cross_entropy", logits, labels)
    return -mean(sum(target * log_softmax(logits, -1), -1))


def svm_loss(scores, labels, margin=1.0):
    """Multiclass SVM (hinge) loss: mean over samples of sum_{j != y} max(0, s_j - s_y + margin)."""
    scores, target = _class_labels("svm_loss", scores, labels)
    correct = sum(scores * target, -1, keepdims=True)
    margins = relu(scores - correct + margin) * (1 - target)
    return mean(sum(margins, -1))


def mse(pred, target):
    """Mean squared error over every element."""
    return mean(square(pred - target))


def l2_regularization(w, strength=1.0):
    """``strength * sum(w * w)``: the L2 penalty (weight decay) term of a loss."""
    return mul(sum(square(_value("l2_regularization", w))), strength)


def layer_norm(x, gamma=None, beta=None, axis=-1, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over ``axis``, then ``* gamma + beta`` when given."""
    mu = mean(x, axis, keepdims=True)
    xc = x - mu
    y = xc * rsqrt(mean(square(xc), axis, keepdims=True) + eps)
    if gamma is not None:
        y = y * gamma
    return y if beta is None else y + beta


def gelu(x, approximate=True):
    """GELU: the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) by default (as JAX),
    or the exact 0.5 x (1 + erf(x / sqrt(2))) with ``approximate=False`` (PyTorch's default)."""
    if approximate:
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


def linear(x, w, b=None):
    """``x @ w + b``: a dense layer."""
    y = matmul(x, w)
    return y if b is None else y + b


def _channel(x, v, axis: int):
    """``v``, of shape (C,), broadcast along ``axis`` of ``x``."""
    return reshape(v, tuple(x.shape[axis] if a == axis else 1 for a in range(x.ndim)))


class BatchNorm(NamedTuple):
    """What training-mode ``batch_norm`` returns: the normalized output, and the batch's mean
    and variance per channel (the biased variance that normalized, and the unbiased one that
    PyTorch's running average takes), for a caller keeping running statistics."""

    out: object
    mean: object
    var: object
    var_unbiased: object


def batch_norm(x, gamma=None, beta=None, *, training=True, running_mean=None, running_var=None, eps=1e-5,
               axis=1):
    """Batch normalization over every axis but the channel ``axis`` (N, C, ...), as PyTorch's.

    ``training=True``: normalizes with the batch's statistics and returns a ``BatchNorm``
    (out, mean, var, var_unbiased); running averages are the caller's:
    ``running = (1 - momentum) * running + momentum * stat``. ``training=False``: normalizes
    with the given ``running_mean`` and ``running_var`` (each of shape (C,)) and returns the output."""
    x = _value("batch_norm", x)
    if not dt.is_float(x.dtype):
        raise DTypeError(f"batch_norm: input must be float, got {x.dtype}")
    if x.ndim < 2 or not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"batch_norm: channel axis {axis} does not fit shape {x.shape} (N, C, ...)")
    axis %= x.ndim
    c = x.shape[axis]
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if v is not None and getattr(v, "shape", None) != (c,):
            raise ShapeError(f"batch_norm: {name} must have shape ({c},), got {getattr(v, 'shape', v)}")
    axes = tuple(a for a in range(x.ndim) if a != axis)
    if training:
        if running_mean is not None or running_var is not None:
            raise ShapeError("batch_norm: training=True normalizes with the batch's statistics; "
                             "pass running_mean/running_var only with training=False")
        mu = mean(x, axes, keepdims=True)
        xc = x - mu
        v = mean(square(xc), axes, keepdims=True)
    else:
        if running_mean is None or running_var is None:
            raise ShapeError("batch_norm: training=False needs the statistics: running_mean= and running_var=")
        mu, v = _channel(x, running_mean, axis), _channel(x, running_var, axis)
        xc = x - mu
    y = xc * rsqrt(v + eps)
    if gamma is not None:
        y = y * _channel(x, gamma, axis)
    if beta is not None:
        y = y + _channel(x, beta, axis)
    if not training:
        return y
    n = x.size // c
    flat_mu, flat_v = reshape(mu, (c,)), reshape(v, (c,))
    return BatchNorm(y, flat_mu, flat_v, flat_v * (n / builtins.max(n - 1, 1)))


def dropout(x, p, key, stream=0, training=True):
    """Inverted dropout: each element of ``x`` zeroed with probability ``p`` and the rest
    scaled by 1 / (1 - p), by a mask drawn from ``gc.random_uniform(key, x.shape, stream=)``
    (the same key: the same mask, on every target and when remat recomputes it). ``key``: an
    int value (an input fed per step) or a Python int. ``training=False`` or ``p=0``: ``x``."""
    x = _value("dropout", x)
    if not 0 <= p <= 1:
        raise ShapeError(f"dropout: p must lie in [0, 1], got {p}")
    if not training or p == 0:
        return x
    key = key if not isinstance(key, int) else x.graph.const(key, "int64")
    keep = ge(random_uniform(key, x.shape, x.dtype, stream), p)
    if p == 1:
        return where(keep, x, 0.0)  # nothing kept (u < 1 always); the gradient is zero, not inf * 0
    return where(keep, x * (1 / (1 - p)), 0.0)
