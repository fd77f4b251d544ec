"""Library ops as generated kernels: the rules both targets share.

A library step (pad, take, take_along_axis, scatter_add, index_add, argmax, argmin; concat on
CUDA, where the CPU calls np.concatenate into the buffer) writes its result straight into its
buffer, reading its operands through their views like a loop kernel. The gathers and
arg-reductions compute one result element at a time (``POINTWISE``:
``rule(v, index, kernel)`` -> lines setting ``res`` at ``index``), on the CPU in a loop nest,
on CUDA one thread per element. How concat, pad and the scatters write differs by target
(the CPU walks each operand once; a CUDA thread gathers what lands on its element), so those
rules are the targets' own.

Indices read from data are checked: a bad one records its fault in ``err`` (the runtime raises
a DataError naming the op, the index and the range after the call) and reads element 0.
"""

from ..ir import dtypes as dt


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
             f"    if {still}(y {better} best{nan}):", "        best = y", "        res = np.int64(m)"])


POINTWISE = {"take_along_axis": _take_along_axis, "take": _take, "argmax": _arg, "argmin": _arg}
