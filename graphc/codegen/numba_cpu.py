"""Numba CPU code generation: one loop kernel per fused group, as Python source for numba.njit.

A kernel receives its output buffers, then the arrays it reads. Broadcast, transposed and
sliced operands are not copied or viewed: ``access`` (``kernel.py``) follows their views down to
the array underneath and reads it by index arithmetic (``bias[i1]``, ``w[i1, i0]``). Loop indices
are unsigned, so numba drops its negative-index check and LLVM can vectorize; a kernel big
enough to pay for threads runs its outer axis in fixed chunks under ``prange``. Reductions keep a
scalar accumulator per result (reduced axes inside) or, when a reduced axis lies outside a
kept one, walk memory in order into an accumulator array; float sums accumulate in float64,
through fixed blocks added in a fixed order (``_sum_block``), and a full reduction combines its
chunks in order, so results are deterministic and the same in whatever kernel a sum lands.

What this target adds to the shared lowering (``kernel.py``): vectorizable float32 exp, tanh
and sigmoid, the helpers of ``PRELUDE``, and fma-compensated constant powers in float64.
"""

import math

import numpy as np

from ..ir import dtypes as dt
from ..passes.fusion import StepKind
from .kernel import (MAXIMUM, MINIMUM, Emitter, Kernel, KernelSource, Reduction, acc_dtype, acc_init,
                     arg_shape, elementwise, indent)
from .library import POINTWISE, SERIAL, check_index, u
from .literals import CTOR, literal
from .powers import power_template

# Kernels thread (fixed chunks of the outer axis; a reduction's threads take whole rows or fixed
# chunks of a full reduction) from PARALLEL_MIN elements: a 4096 x 256 layer norm step 4.0 ->
# 1.4 ms on 2 cores, a 2^20-element elementwise kernel 1.09 -> 0.52 ms (the crossovers near
# 2^15). Not where the plan's matmuls run on OpenBLAS's own pool (``apart``; see
# runtime/blas.py): its threads spin for a long while after each matmul and numba's stall
# against them (8 residual blocks: 97 ms a step serial, 273 ms threaded; a convnet's im2col
# copy 2.2 ms serial, 4.6 ms threaded), so there kernels stay serial up to APART_PARALLEL_MIN.
PARALLEL_MIN = 1 << 16
APART_PARALLEL_MIN = 1 << 26
CHUNKS = 64  # partial results of a parallel full reduction
COLUMN_RUN = 64  # elements: reduced axes inside the last kept axis shorter than this reduce as columns

PRELUDE = '''\
import math

import numba
import numpy as np

from graphc.codegen.intrinsics import f32_from_bits, fma


@numba.njit(cache=True, inline="always")
def _sigmoid(x):
    e = math.exp(-abs(x))
    return 1 / (1 + e) if x >= 0 else e / (1 + e)


@numba.njit(cache=True, inline="always")
def _softplus(x):
    return max(x, 0) + math.log1p(math.exp(-abs(x)))


@numba.njit(cache=True, inline="always")
def _tanh32(x):
    # Eigen's (and XLA's) rational approximation: within 7 ulp in float32, exactly +-1 beyond
    # +-7.9988, and it vectorizes,
    # where a loop calling math.tanh stays scalar.
    c = np.float32(7.99881172180175781)
    y = max(min(x, c), -c)
    y2 = y * y
    p = y2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = y2 * p + np.float32(-8.60467152213735e-11)
    p = y2 * p + np.float32(5.12229709037114e-08)
    p = y2 * p + np.float32(1.48572235717979e-05)
    p = y2 * p + np.float32(6.37261928875436e-04)
    p = y2 * p + np.float32(4.89352455891786e-03)
    q = y2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = y2 * q + np.float32(2.26843463243900e-03)
    q = y2 * q + np.float32(4.89352518554385e-03)
    r = y * p / q
    r = np.float32(1.0) if x >= c else (np.float32(-1.0) if x <= -c else r)
    return x if abs(x) < np.float32(0.0004) else r


@numba.njit(cache=True, inline="always")
def _exp32(x):
    # Cephes' expf: x = n ln2 + r, e^r by a degree-5 polynomial, 2^n from exponent bits in two
    # halves (each a normal float), so overflow gives inf and underflow subnormals, then 0.
    # All in float32, within 0.98 ulp of exp (as Eigen's and XLA's); unlike a call to math.exp,
    # it vectorizes. n = round(x / ln2) by the 1.5 * 2^23 trick: math.floor gives an int64,
    # and evaluating in float64 halves the lanes (0.54 ulp, but 8.6 instead of 3.4 us on 6400).
    # Below -104 the result is 0; those lanes compute exp(0) and are replaced, since scaling into
    # the subnormals takes a microcode assist per element (a masked softmax's -1e9: 4x slower).
    gone = x < np.float32(-104.0)
    x = np.float32(0.0) if gone else min(x, np.float32(89.0))
    n = (x * np.float32(1.44269504088896341) + np.float32(12582912.0)) - np.float32(12582912.0)
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    y = p * r * r + r + np.float32(1.0)
    k = np.int32(n)
    h = k >> np.int32(1)
    e = (y * f32_from_bits(np.int32((h + 127) << 23))) * f32_from_bits(np.int32((k - h + 127) << 23))
    return np.float32(0.0) if gone else e


@numba.njit(cache=True, inline="always")
def _sigmoid32(x):
    e = _exp32(-abs(x))
    one = np.float32(1.0)
    return one / (one + e) if x >= 0 else e / (one + e)


@numba.njit(cache=True, inline="always")
def _dd_mul(a, b):
    # (a[0] + a[1]) * (b[0] + b[1]) as a rounded product and its error: the product's own
    # rounding error, exact by fma, plus the cross terms (see powers.py)
    p = a[0] * b[0]
    return p, fma(a[0], b[0], -p) + (a[0] * b[1] + a[1] * b[0])


@numba.njit(cache=True, inline="always")
def _dd_value(a):
    # the corrected product, but inf, NaN and signed zeros as the rounded one has them
    return a[0] + a[1] if a[0] != 0 and math.isfinite(a[0]) else a[0]


@numba.njit(cache=True, inline="always")
def _dd_inverse(a):
    # 1 / (a[0] + a[1]): with q = 1 / a[0], a[0] * q = 1 - e exactly (by fma), so the inverse
    # is about q + q * (e - a[1] * q)
    q = 1.0 / a[0]
    return q, q * (-fma(a[0], q, -1.0) - a[1] * q)


@numba.njit(cache=True, inline="always")
def _dd_sqrt(x):
    # sqrt(x) as s + (x - s * s) / 2s, the residual exact by fma
    s = math.sqrt(x)
    return s, fma(-s, s, x) / (s + s)


@numba.njit(cache=True)
def _sum_block(t, n):
    # Eight partial sums in a fixed order: LLVM vectorizes them without reassociating, so a
    # float sum's bits are the same in whatever kernel it is fused into.
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    m = n - n % np.uint64(8)
    for j in range(np.uint64(0), m, np.uint64(8)):
        a0 += t[j]
        a1 += t[j + np.uint64(1)]
        a2 += t[j + np.uint64(2)]
        a3 += t[j + np.uint64(3)]
        a4 += t[j + np.uint64(4)]
        a5 += t[j + np.uint64(5)]
        a6 += t[j + np.uint64(6)]
        a7 += t[j + np.uint64(7)]
    for j in range(m, n):
        a0 += t[j]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))

'''


LOWER_FLOAT32 = {"tanh": "_tanh32({0})", "exp": "_exp32({0})", "sigmoid": "_sigmoid32({0})"}  # vectorize
# ops whose CPU lowering calls libm (math.*, or pow itself), a scalar call that keeps LLVM from
# vectorizing the loop around it; float32 has vectorizable exp, tanh and sigmoid (LOWER_FLOAT32)
# and pow by a constant is arithmetic (powers.py)
LIBM_CALLS = {"exp", "log", "tanh", "sin", "cos", "log1p", "expm1", "erf", "sigmoid", "softplus", "pow"}


class CpuEmitter(Emitter):
    target = "CPU"
    by_dtype = {"float32": LOWER_FLOAT32}
    fma = True


CPU = CpuEmitter()


def scalar_call(v) -> bool:
    """Whether the CPU lowering of ``v`` calls a scalar library function (``LIBM_CALLS``)."""
    if v.op not in LIBM_CALLS or (v.dtype == "float32" and v.op in LOWER_FLOAT32):
        return False
    return v.op != "pow" or power_template(v, fma=True) is None


def _source(kernel: Kernel, n_outputs: int, parallel: bool, body: list) -> tuple[str, tuple]:
    """A kernel's whole source (``PRELUDE``, decorator, signature, ``body``) and its extras."""
    args, extras = kernel.arguments(n_outputs)
    lines = [f"@numba.njit(cache=True, error_model='numpy', parallel={parallel})",
             f"def kernel({', '.join(args)}):"] + indent(body, 1)
    return PRELUDE + "\n\n" + "\n".join(lines) + "\n", extras


def elementwise_kernel(group, leaves, parallel_min: int = PARALLEL_MIN) -> KernelSource:
    """Roots and inlined values all have the domain shape; one pass over it. When every leaf is
    read directly (no broadcast, transpose or slice), the domain is flattened to one loop."""
    e = elementwise(CPU, group, leaves)
    parallel = math.prod(e.domain) >= parallel_min
    header, depth = _loops(range(len(e.domain)), e.domain, parallel)
    source, extras = _source(e.kernel, len(group.roots), parallel, e.hoisted + header + indent(e.point, depth))
    return KernelSource(group.name, source, list(group.roots), e.kernel.bases, e.in_shapes,
                        [e.domain] * len(group.roots), list(extras), e.kernel.faults,
                        [v for v in group.values if scalar_call(v)])


def _accumulate(op: str, acc: str, x: str, is_float: bool) -> list:
    if op == "sum":
        return [f"{acc} += {x}"]
    if is_float:  # IEEE, as the maximum op: NaN wins and -0 < +0, so the order of the elements does not matter
        return [f"{acc} = {(MAXIMUM if op == 'max' else MINIMUM).format(acc, x)}"]
    return [f"if {x} {'>' if op == 'max' else '<'} {acc}:", f"    {acc} = {x}"]


def _loops(axes, domain, parallel: bool, setup=()) -> tuple[list, int]:
    """Nested loops over ``axes`` of ``domain``: (lines, depth of the body), with the lines
    ``setup`` run once before them (once per chunk of a parallel nest: scratch buffers).

    Indices are unsigned: numba then knows they are never negative and drops its wraparound
    check, which otherwise keeps LLVM from vectorizing (measured 11 ms -> 1.9 ms on a 2^24
    reduction). A parallel nest splits its outer axis into fixed chunks across threads.
    """
    lines, depth = ([] if parallel else list(setup)), 0
    for k, a in enumerate(axes):
        pad = "    " * depth
        if parallel and k == 0:
            chunks = min(CHUNKS, domain[a])
            lines += [f"{pad}for c in numba.prange({chunks}):",
                      f"{pad}    lo = np.uint64(c * {domain[a]} // {chunks})",
                      f"{pad}    hi = np.uint64((c + 1) * {domain[a]} // {chunks})"]
            lines += indent(setup, depth + 1) + [f"{pad}    for i{a} in range(lo, hi):"]
            depth += 2
        else:
            lines.append(f"{pad}for i{a} in range(np.uint64({domain[a]})):")
            depth += 1
    return lines, depth


BLOCK = 512  # elements a float sum takes at a time through its scratch buffer


class _ReductionKernel:
    """A reduction in three phases: the prologue (elementwise values over the input, some of
    them stored), the accumulation, and the epilogue (elementwise values over the result, once
    per result element), then the row epilogue's pass over the row if it has one. Kept axes
    loop outside, reduced axes inside; ``body`` picks the loop nest for the axes."""

    def __init__(self, group, leaves, parallel_min: int):
        self.name = group.name
        r = self.r = Reduction(group, leaves)
        self.kernel = Kernel(CPU)
        self.hoisted, self.point, self.reduced = r.prologue_point(self.kernel)
        self.is_float = dt.is_float(r.x.dtype)
        root, result = r.root, self.kernel.local(r.root)
        self.finish = [f"{result} = {CTOR[root.dtype]}(acc)", f"o0[{r.out_index}] = {result}"]
        self.finish += r.epilogue_lines(self.kernel) + self.kernel.store(r.finals, r.out_arg, r.result_index)
        if r.row:  # a second pass over this row: the row epilogue (see fusion)
            loops, depth = _loops(r.axes, r.domain, False)
            self.finish += loops + indent(self.kernel.row_point(r, leaves, r.index), depth)
        self.parallel = math.prod(r.domain) >= parallel_min

    def source(self) -> KernelSource:
        r = self.r
        body = self.body()
        threaded = any("numba.prange" in line for line in body)  # a column sum over rows stays serial
        source, extras = _source(self.kernel, len(r.outputs), threaded, self.hoisted + body)
        return KernelSource(self.name, source, r.outputs, self.kernel.bases,
                            [arg_shape(b, False) for b in self.kernel.bases], r.out_shapes, list(extras),
                            self.kernel.faults,
                            [v for v in r.prologue + r.row if scalar_call(v)])  # the epilogue runs once a result

    def body(self) -> list:
        r = self.r
        if r.kept and max(r.kept) > min(r.axes) and math.prod(r.domain[max(r.kept) + 1:]) < COLUMN_RUN:
            return self.columns()
        return self.rows() if r.kept else self.full()

    def columns(self) -> list:
        """A reduced axis lies outside a kept one, and the reduced axes inside the last kept one
        are short (a column sum): walk memory in order and accumulate into a small array,
        instead of striding across rows for every result. (Where they are long, as a bias
        gradient's (N, C, H, W) summed to C, ``rows`` reads runs of H*W in order per channel and
        keeps its sum in a register.)"""
        r = self.r
        nest, depth = _loops(range(len(r.domain)), r.domain, self.parallel and r.kept[0] == 0)
        acc_at = f"accs[{r.out_index}]"
        outer, out_depth = _loops(r.kept, r.domain, False)
        return ([f"accs = np.full(({', '.join(str(d) for d in r.keep_shape)},), {acc_init(r.root)})"]
                + nest + indent(self.point + _accumulate(r.root.op, acc_at, self.reduced, self.is_float), depth)
                + outer + indent([f"acc = {acc_at}"] + self.finish, out_depth))

    def rows(self) -> list:
        """One result per iteration of the kept axes, its reduced axes inside (a scratch block
        per thread, not per row)."""
        r = self.r
        outer, depth = _loops(r.kept, r.domain, self.parallel, self.scratch())
        inner = self.reduce({a: ("np.uint64(0)", f"np.uint64({r.domain[a]})") for a in r.axes})
        return outer + indent([f"acc = {acc_init(r.root)}"] + inner + self.finish, depth)

    def full(self) -> list:
        """A full reduction: fixed chunks of the first axis, reduced in parallel, combined in order."""
        r = self.r
        init = f"acc = {acc_init(r.root)}"
        chunks = min(CHUNKS, r.domain[0]) if self.parallel else 1
        ranges = {a: ("np.uint64(0)", f"np.uint64({r.domain[a]})") for a in r.axes}
        ranges[r.axes[0]] = ("lo", "hi")
        return ([f"partial = np.empty({chunks}, dtype=np.{acc_dtype(r.root)})",
                 f"for c in {'numba.prange' if self.parallel else 'range'}({chunks}):",
                 f"    lo = np.uint64(c * {r.domain[0]} // {chunks})",
                 f"    hi = np.uint64((c + 1) * {r.domain[0]} // {chunks})"]
                + indent([init] + self.scratch() + self.reduce(ranges) + ["partial[c] = acc"], 1)
                + [init, f"for c in range({chunks}):"]
                + indent(_accumulate(r.root.op, "acc", "partial[c]", self.is_float), 1) + self.finish)

    def scratch(self) -> list:
        return [f"blk = np.empty({BLOCK}, dtype=np.float64)"] if self.r.root.op == "sum" and self.is_float else []

    def reduce(self, ranges: dict) -> list:
        """Loops over the reduced axes (each over ``ranges[axis]``) accumulating into ``acc``.
        A float sum takes its innermost axis in blocks: the prologue fills a scratch buffer,
        which ``_sum_block`` adds up in a fixed order, so the sum does not depend on the code
        around it (LLVM would otherwise need leave to reassociate, and would do it differently
        per kernel)."""
        root, axes = self.r.root, self.r.axes
        if not (root.op == "sum" and self.is_float):
            lines, depth = _ranges(axes, ranges)
            return lines + indent(self.point + _accumulate(root.op, "acc", self.reduced, self.is_float), depth)
        *outer, last = axes
        lines, depth = _ranges(outer, ranges)
        start, stop = ranges[last]
        block = [f"for b in range({start}, {stop}, np.uint64({BLOCK})):",
                 f"    n = min(np.uint64({BLOCK}), {stop} - b)",
                 "    for j in range(n):",  # (indexing blk by j, not i - b, keeps the loop vectorized)
                 f"        i{last} = b + j"]
        block += indent(self.point + [f"blk[j] = np.float64({self.reduced})"], 2)
        block += ["    acc += _sum_block(blk, n)"]
        return lines + indent(block, depth)


def _ranges(axes, ranges: dict) -> tuple[list, int]:
    """Nested loops ``for i<a> in range(*ranges[a])`` over ``axes``: (lines, depth of the body)."""
    lines = ["    " * depth + f"for i{a} in range({ranges[a][0]}, {ranges[a][1]}):" for depth, a in enumerate(axes)]
    return lines, len(lines)


def reduction_kernel(group, leaves, parallel_min: int = PARALLEL_MIN) -> KernelSource:
    return _ReductionKernel(group, leaves, parallel_min).source()


# ---------------------------------------------------------------- library steps

# library ops the runtime runs as numpy calls writing the step's buffer (``out=``): matmul is
# BLAS, and a concat kernel would take an argument and a loop nest per operand (the fan-in of a
# 64-step loop's slices: 16 s for numba to compile, where np.concatenate copies into place)
NUMPY_CALLS = {"matmul": lambda attrs, xs, out: np.matmul(*xs, out=out),
               "concat": lambda attrs, xs, out: np.concatenate(xs, axis=attrs["axis"], out=out)}


def _nest(shape, body: list, split: int = 0, head=()) -> list:
    """``body`` inside serial loops ``i0, i1, ...`` over ``shape``, with ``head`` run inside
    the first ``split`` of them (an index looked up once per row)."""
    outer, depth = _loops(range(split), shape, False)
    inner, more = _loops(range(split, len(shape)), shape, False)
    return outer + indent(list(head) + inner + indent(body, more), depth)


def _at(index) -> str:
    return ", ".join(index) or "0"  # a 0-d buffer is passed as one element


def _index(shape) -> list:
    return [f"i{a}" for a in range(len(shape))]


def _pointwise(v, kernel) -> list:
    index = _index(v.shape)
    return _nest(v.shape, POINTWISE[v.op](v, index, kernel) + [f"o0[{_at(index)}] = res"])


def _gather(v, kernel) -> list:
    """take: each index looked up and checked once, then its slice copied."""
    x, idx = v.inputs
    axis, k = v.attrs["axis"], idx.ndim
    index = _index(v.shape)
    at = index[:axis] + ["np.uint64(j)"] + index[axis + k:]
    head = [f"j = np.int64({kernel.read(idx, index[axis:axis + k])})"] + check_index(kernel, v, "j", x.shape[axis])
    return _nest(v.shape, [f"o0[{_at(index)}] = {kernel.read(x, at)}"], axis + k, head)


def _pad(v, kernel) -> list:
    """Zeros, then the operand at its strided place."""
    (x,) = v.inputs
    index = _index(x.shape)
    at = [f"{u(lo)} + {u(gap + 1)} * {i}" for i, lo, gap in zip(index, v.attrs["low"], v.attrs["interior"])]
    lines = _nest(v.shape, [f"o0[{_at(_index(v.shape))}] = {literal(0, v.dtype)}"])
    return lines + (_nest(x.shape, [f"o0[{_at(at)}] = {kernel.read(x, index)}"]) if x.size else [])


def _scatter(v, kernel) -> list:
    """scatter_add: every update added at its place in order (as ``np.add.at``), float ones
    into a float64 accumulator, rounded to the result's dtype once at the end."""
    upd, idx = v.inputs
    out, index = _index(v.shape), _index(upd.shape)
    wide = dt.is_float(v.dtype) and v.dtype != "float64"
    acc = "acc" if wide else "o0"
    lines = ([f"acc = np.zeros(({', '.join(str(d) for d in v.shape)},), dtype=np.float64)"] if wide
             else _nest(v.shape, [f"o0[{_at(out)}] = {literal(0, v.dtype)}"]))
    at = list(index)
    at[v.attrs["axis"]] = "np.uint64(j)"
    add = f"np.float64({kernel.read(upd, index)})" if wide else kernel.read(upd, index)
    lines += _nest(upd.shape, [f"j = np.int64({kernel.read(idx, index)})"]
                   + check_index(kernel, v, "j", v.attrs["size"]) + [f"{acc}[{_at(at)}] += {add}"])
    if wide:
        lines += _nest(v.shape, [f"o0[{_at(out)}] = {CTOR[v.dtype]}(acc[{_at(out)}])"])
    return lines


def _index_add(v, kernel) -> list:
    """index_add (an embedding's gradient): the update slices sorted by their row (a stable
    counting sort of the indices), then each row of the result summed from its slices in
    order, in float64 for floats, and written once. The sums are np.add.at's, bit for bit,
    and rows no index names cost one write of zeros."""
    upd, idx = v.inputs
    axis, size, k = v.attrs["axis"], v.attrs["size"], idx.ndim
    index = _index(upd.shape)
    lookup = [f"j = np.int64({kernel.read(idx, index[axis:axis + k])})"] + check_index(kernel, v, "j", size)
    positions, depth = _loops(range(axis, axis + k), upd.shape, False)  # over the indices, twice
    lines = [f"counts = np.zeros({size + 1}, dtype=np.int64)"]
    lines += positions + indent(lookup + ["counts[j + 1] += 1"], depth)
    lines += [f"for r in range({size}):", "    counts[r + 1] += counts[r]",
              f"order = np.empty({idx.size}, dtype=np.int64)", f"fill = counts[:{size}].copy()", "p = 0"]
    lines += positions + indent(lookup + ["order[fill[j]] = p", "fill[j] += 1", "p += 1"], depth)
    post = list(range(axis + k, upd.ndim))
    wide = dt.is_float(v.dtype)
    unravel = []
    for d in reversed(range(k)):
        unravel += [f"i{axis + d} = np.uint64(p % {idx.shape[d]})", f"p = p // {idx.shape[d]}"]
    inner, more = _loops(post, upd.shape, False)
    add = f"np.float64({kernel.read(upd, index)})" if wide else kernel.read(upd, index)
    out = [f"i{a}" for a in range(axis)] + ["np.uint64(r)"] + [f"i{a}" for a in post]
    row = [f"for t in range({math.prod(upd.shape[axis + k:])}):",
           f"    row[t] = {'0.0' if wide else literal(0, v.dtype)}",
           "for q in range(counts[r], counts[r + 1]):", "    p = order[q]"]
    row += indent(unravel + ["t = 0"] + inner + indent([f"row[t] += {add}", "t += 1"], more), 1)
    row += ["t = 0"] + inner + indent([f"o0[{_at(out)}] = {CTOR[v.dtype]}(row[t])", "t += 1"], more)
    outer, top = _loops(range(axis), upd.shape, False)
    acc = "np.float64" if wide else f"np.{v.dtype}"
    lines += [f"row = np.empty({max(1, math.prod(upd.shape[axis + k:]))}, dtype={acc})"]
    return lines + outer + indent([f"for r in range({size}):"] + indent(row, 1), top)


_LIBRARY = {**{op: _pointwise for op in POINTWISE}, "take": _gather, "pad": _pad,
            "scatter_add": _scatter, "index_add": _index_add}


def _pointwise_parallel(v, kernel) -> list:
    """A pointwise rule in fixed chunks of the outer axis across threads: each element is its
    own, so nothing races (rules that check indices stay serial, see ``library_kernel``)."""
    index = _index(v.shape)
    nest, depth = _loops(range(v.ndim), v.shape, True)
    return nest + indent(POINTWISE[v.op](v, index, kernel) + [f"o0[{_at(index)}] = res"], depth)


def library_kernel(group, parallel_min: int = PARALLEL_MIN) -> KernelSource:
    """A library step (not a numpy call) as loop nests writing its buffer directly (``library.py``).
    A pointwise rule of ``parallel_min`` elements or more threads, unless it checks indices:
    two threads' faults could mix one's code with the other's index in ``err``."""
    (v,) = group.roots
    kernel = Kernel(CPU)
    body = _LIBRARY[v.op](v, kernel) or ["return"]  # (nothing to write)
    parallel = v.op in POINTWISE and v.op not in SERIAL and v.ndim > 0 and v.size >= parallel_min and not kernel.faults
    if parallel:
        kernel = Kernel(CPU)
        body = _pointwise_parallel(v, kernel)
    source, extras = _source(kernel, 1, parallel, body)
    return KernelSource(group.name, source, [v], kernel.bases, [arg_shape(b, False) for b in kernel.bases],
                        [v.shape or (1,)], list(extras), kernel.faults)


def has_kernel(step) -> bool:
    """Whether this target generates a kernel for ``step`` (loop steps, and library steps but
    ``NUMPY_CALLS``)."""
    return step.kind is StepKind.LOOP or (step.kind is StepKind.LIBRARY and step.roots[0].op not in NUMPY_CALLS)


def kernel_source(group, leaves, apart: bool = False) -> KernelSource:
    """The kernel of loop or library step ``group``; ``apart``: its plan's matmuls run on
    OpenBLAS's own thread pool, so the kernel threads only from ``APART_PARALLEL_MIN`` elements
    (see ``PARALLEL_MIN``)."""
    parallel_min = APART_PARALLEL_MIN if apart else PARALLEL_MIN
    if group.kind is StepKind.LIBRARY:
        return library_kernel(group, parallel_min)
    if group.reduction is None:
        return elementwise_kernel(group, leaves, parallel_min)
    return reduction_kernel(group, leaves, parallel_min)
