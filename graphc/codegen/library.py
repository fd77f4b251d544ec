"""Library ops as generated kernels: the rules both targets share.

A library step (pad, take, take_along_axis, scatter_add, index_add, argmax, argmin, fold,
random_uniform; concat on CUDA, where the CPU calls np.concatenate into the buffer) writes its
result straight into its buffer, reading its operands through their views like a loop kernel.
The gathers, arg-reductions, fold (col2im, gathered) and the random draws compute one result
element at a time (``POINTWISE``:
``rule(v, index, kernel)`` -> lines setting ``res`` at ``index``), on the CPU in a loop nest,
on CUDA one thread per element. How concat, pad and the scatters write differs by target
(the CPU walks each operand once; a CUDA thread gathers what lands on its element), so those
rules are the targets' own.

Indices read from data are checked: a bad one records its fault in ``err`` (the runtime raises
a DataError naming the op, the index and the range after the call) and reads element 0.
"""

import math

from ..ir import dtypes as dt
from ..ir.ops import LOW32, PHILOX_M, PHILOX_ROUNDS, PHILOX_W
from .literals import literal


def u(n) -> str:
    """An unsigned 64-bit literal (the kernels' indices are unsigned)."""
    return f"np.uint64({n})"


def check_index(kernel, v, idx: str, size: int) -> list:
    """Lines recording index ``idx`` out of [0, ``size``) as ``v``'s fault, then reading 0."""
    code = kernel.fault(v.id, f"%{v.id} ({v.op}): index {{}} is out of range [0, {size})")
    return [f"if {idx} < 0 or {idx} >= {size}:", f"    err[0] = {code}", f"    err[1] = {idx}", f"    {idx} = 0"]


def _take_along_axis(v, index, kernel):
    x, idx = v.inputs
    axis = v.attrs["axis"]
    at = list(index)
    at[axis] = "np.uint64(j)"
    return ([f"j = np.int64({kernel.read(idx, index)})"] + check_index(kernel, v, "j", x.shape[axis])
            + [f"res = {kernel.read(x, at)}"])


def _take(v, index, kernel):
    """``x[..., idx[p], ...]``: the result's axes ``axis .. axis + idx.ndim`` index ``idx``."""
    x, idx = v.inputs
    axis, k = v.attrs["axis"], idx.ndim
    at = list(index[:axis]) + ["np.uint64(j)"] + list(index[axis + k:])
    return ([f"j = np.int64({kernel.read(idx, index[axis:axis + k])})"]
            + check_index(kernel, v, "j", x.shape[axis]) + [f"res = {kernel.read(x, at)}"])


def _arg(v, index, kernel):
    (x,) = v.inputs
    axis, keep = v.attrs["axis"], v.attrs["keepdims"]
    outer = list(index) if keep else index[:axis] + ["0"] + index[axis:]
    at = [("m" if a == axis else i) for a, i in enumerate(outer)]
    first = [("np.uint64(0)" if a == axis else i) for a, i in enumerate(outer)]
    better = ">" if v.op == "argmax" else "<"
    nan = " or y != y" if dt.is_float(x.dtype) else ""
    still = "best == best and " if dt.is_float(x.dtype) else ""
    return ([f"best = {kernel.read(x, first)}", "res = np.int64(0)",
             f"for m in range(np.uint64(1), {u(x.shape[axis])}):", f"    y = {kernel.read(x, at)}",
             f"    take = {still}(y {better} best{nan})",  # selects, not branches: data decides them
             "    best = y if take else best", "    res = np.int64(m) if take else res"])


def _fold(v, index, kernel):
    """fold (col2im) gathered: the window elements landing on this one, added in the row-major
    order of their window offsets, as the reference adds them (so the sums agree bit for bit)."""
    (g,) = v.inputs
    window, strides, dilation = v.attrs["window"], v.attrs["strides"], v.attrs["dilation"]
    k = len(window)
    lead, counts = index[:len(index) - k], g.shape[g.ndim - k:]
    lines, depth = [f"res = {literal(0, v.dtype)}"], 0
    for a, (p, w, s, d, n) in enumerate(zip(index[len(index) - k:], window, strides, dilation, counts)):
        hit = f"t{a} >= 0" + (f" and t{a} % {s} == 0" if s > 1 else "") + f" and t{a} // {s} < {n}"
        lines += ["    " * depth + line for line in (f"for q{a} in range({w}):",
                                                       f"    t{a} = np.int64({p}) - q{a} * {d}", f"    if {hit}:")]
        depth += 2
    at = lead + [f"np.uint64(q{a})" for a in range(k)] + [f"np.uint64(t{a} // {s})" for a, s in enumerate(strides)]
    return lines + ["    " * depth + f"res += {kernel.read(g, at)}"]


def _random_uniform(v, index, kernel):
    """Philox4x32-10 of counter (the element's row-major position, stream) under the key, its
    rounds written out as ``ops.philox4x32`` runs them on numpy arrays."""
    (key,) = v.inputs
    strides = [math.prod(v.shape[a + 1:]) for a in range(v.ndim)]
    flat = " + ".join(f"{u(s)} * {i}" for s, i in zip(strides, index)) or u(0)
    stream = v.attrs["stream"] & (1 << 64) - 1
    low, m0, m1, w0, w1 = (u(c) for c in (LOW32,) + PHILOX_M + PHILOX_W)
    lines = [f"rk = np.uint64(np.int64({kernel.read(key, [])}))", f"rf = {flat}",
             f"c0 = rf & {low}", f"c1 = rf >> {u(32)}", f"c2 = {u(stream & LOW32)}", f"c3 = {u(stream >> 32)}",
             f"k0 = rk & {low}", f"k1 = rk >> {u(32)}",
             f"for rr in range({PHILOX_ROUNDS}):", f"    p0 = {m0} * c0", f"    p1 = {m1} * c2",
             f"    c0, c1, c2, c3 = (p1 >> {u(32)}) ^ c1 ^ k0, p1 & {low}, (p0 >> {u(32)}) ^ c3 ^ k1, p0 & {low}",
             f"    k0 = (k0 + {w0}) & {low}", f"    k1 = (k1 + {w1}) & {low}"]
    if v.dtype == "float32":
        return lines + [f"res = np.float32(c0 >> {u(8)}) * np.float32({2.0 ** -24!r})"]
    return lines + [f"res = np.float64((c0 << {u(21)}) | (c1 >> {u(11)})) * {2.0 ** -53!r}"]


# pointwise rules that stay serial at any size: the arg-reductions' branchy scans ran slower
# threaded (a max-pool's argmax over 4-element windows, 2^19 results: 1.6 -> 2.3 ms)
SERIAL = frozenset({"argmax", "argmin"})
POINTWISE = {"take_along_axis": _take_along_axis, "take": _take, "argmax": _arg, "argmin": _arg, "fold": _fold,
             "random_uniform": _random_uniform}
