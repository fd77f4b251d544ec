"""numba.cuda code generation: the fused groups of the CPU plan as ``cuda.jit`` kernels.

Every step that writes a buffer becomes one kernel; views cost nothing, because every kernel
reads its operands through their views by index arithmetic (``access``, here also through
``reshape``), so no view is ever materialized on the device.

- Elementwise groups: a grid-stride loop over the domain, one element per thread per round.
- Reductions: one block per result element (or ``parts`` blocks for few, long results). Each
  thread accumulates a strided share of the reduced elements, computing and storing the
  prologue on the way, then the block combines the shares by a shared-memory tree. With parts,
  each block leaves its partial in a scratch array and the last block to finish (an atomic
  ticket) combines the partials in order. The combination order depends only on the shapes and
  the block size, never on timing, so results are deterministic. The epilogue then runs in
  every thread of the finishing block (thread 0 stores it) and the row epilogue runs over the
  row again, split across the block's threads.
- Matmul: shared-memory tiles and register tiles (see ``matmul_kernel``), batch dimensions on
  the grid's z axis.
- concat, pad, take, take_along_axis, scatter_add, index_add, argmax/argmin, fold,
  random_uniform: one thread per result element (``library.py``). The scatters gather (each result sums the updates aimed at
  it, in order) instead of racing with atomics, so they are deterministic; index ops check
  their indices on the device and record a bad one in an error array the runtime reads after
  the call.

Indices are unsigned 64-bit like the CPU kernels' (numba would turn a mix of signed and
unsigned into floats). Identifiers are made here; constants are validated literals.
"""

import math

from ..errors import CompileError
from ..ir import dtypes as dt
from .kernel import (LOWER, MAXIMUM, MINIMUM, UNSIGNED, Emitter, Kernel, KernelSource, Reduction, acc_dtype,
                     acc_init, access, arg_shape, elementwise, indent)
from .library import POINTWISE, check_index, u as _u
from .literals import CTOR, literal


def cuda_module():
    """``numba.cuda``, imported on first use: a CPU-only user never pays for it."""
    from numba import cuda

    return cuda


def simulator() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def gpu_available() -> bool:
    """A real GPU that numba can use (the simulator does not count)."""
    try:
        return not simulator() and cuda_module().is_available()
    except Exception:  # noqa: BLE001 - no driver, no toolkit, no device: no GPU either way
        return False


MATH = {False: "import math", True: "from graphc.codegen import sim_math as math"}  # see sim_math
THREADS = 256  # threads per block; reductions combine this many shares, so it is part of the source
REACH = 4  # a matmul thread computes REACH x REACH results: a 16 x 16 block, a 64 x 64 tile
MIN_BLOCKS = 1024  # reductions with fewer results than this split each one over several blocks
MAX_BLOCKS = 65535  # grid-stride loops cover what a grid of at most this many blocks does not

PRELUDE = '''\
{math}

import numpy as np
from numba import cuda
'''


class CudaEmitter(Emitter):
    """libdevice's float32 functions are fast and vectorization is no concern here, so the
    plain table serves but for two helpers, written out in place: device functions would make
    numba ask the driver for the device while compiling, and PTX could not be checked on a
    machine without a GPU (cuda_ptx.py). Views are followed through reshapes too."""

    target = "CUDA"
    lower = {**LOWER,
             "sigmoid": "{one} / ({one} + math.exp(-{0})) if {0} >= {zero} else "
                        "math.exp({0}) / ({one} + math.exp({0}))",
             "softplus": "max({0}, {zero}) + math.log1p(math.exp(-abs({0})))"}

    def through(self, v, index: list) -> tuple:
        return through(v, index)


def through(v, index: list) -> tuple:
    """``access`` that also follows ``reshape``: the row-major position of ``index`` in the
    reshaped value, taken apart again in the shape underneath."""
    v, index = access(v, index)
    while v.op == "reshape":
        src = v.inputs[0]
        terms = [(i, d) for i, d in zip(index, v.shape) if d != 1]
        flat = ""
        for i, d in terms:
            flat = i if not flat else f"({flat}) * {_u(d)} + {i}"
        inner = []
        for k, d in reversed(list(enumerate(src.shape))):
            if d == 1:
                inner.append(_u(0))
                continue
            stride = math.prod(src.shape[k + 1:])
            part = flat if stride == 1 else f"({flat}) // {_u(stride)}"
            inner.append(part if k == 0 else f"({part}) % {_u(d)}")
        index = list(reversed(inner)) if flat else [_u(0)] * src.ndim
        v, index = access(src, index)
    return v, index


def _unravel(flat: str, shape, names: list) -> list:
    """Lines setting ``names[k]`` to the index of row-major position ``flat`` along axis k."""
    lines, rest = [], flat
    for k in reversed(range(len(shape))):
        if k == 0:
            lines.append(f"{names[k]} = {rest}")
        else:
            lines.append(f"{names[k]} = {rest} % {_u(shape[k])}")
            lines.append(f"t{k} = {rest} // {_u(shape[k])}")
            rest = f"t{k}"
    return lines


CUDA = CudaEmitter()


def _kernel(name, kernel: Kernel, outputs, out_shapes, lines, launch, *, extras=(), flat=False) -> KernelSource:
    """The kernel ``name`` whose body is ``lines``: outputs ``o<k>``, base arrays ``a<k>`` (whole,
    or ``flat``), then ``extras`` ((name, dtype, size): zeroed scratch the runtime allocates with
    the arena; ``err`` added when the kernel records faults), launched as
    ``launch`` = (blocks, threads), each an int or a tuple."""
    args, extras = kernel.arguments(len(outputs), extras)
    head = ["@cuda.jit(cache=True)", f"def kernel({', '.join(args)}):"]
    src = PRELUDE.format(math=MATH[simulator()]) + "\n\n" + "\n".join(head + indent(lines, 1)) + "\n"
    return KernelSource(name, src, list(outputs), kernel.bases, [arg_shape(b, flat) for b in kernel.bases],
                        out_shapes, list(extras), kernel.faults, launch=launch)


def _grid_stride(n: int, threads: int, max_blocks: int) -> tuple[list, int]:
    """A grid-stride loop over ``n`` items (index ``k``) and the blocks to launch for it."""
    lines = ["k = np.uint64(cuda.grid(1))", "step = np.uint64(cuda.gridsize(1))", f"while k < {_u(n)}:"]
    return lines, max(1, min(-(-n // threads), max_blocks))


def elementwise_kernel(group, leaves, threads, max_blocks) -> KernelSource:
    e = elementwise(CUDA, group, leaves)
    loop, blocks = _grid_stride(math.prod(e.domain), threads, max_blocks)
    lines = e.hoisted + loop + indent(_unravel("k", e.domain, e.index) + e.point + ["k += step"], 1)
    return _kernel(group.name, e.kernel, group.roots, [e.domain] * len(group.roots), lines, (blocks, threads),
                   flat=e.flat)


_COMBINE = {"sum": "{0} + {1}", "max": MAXIMUM, "min": MINIMUM}


def _tree(op: str, threads: int) -> list:
    """Combine ``sh[0:threads]`` into ``sh[0]`` in a fixed order; every thread then reads it."""
    lines = ["cuda.syncthreads()"]
    s = threads // 2
    while s:
        lines += [f"if t < {_u(s)}:", f"    sh[t] = {_COMBINE[op].format('sh[t]', f'sh[t + {_u(s)}]')}",
                  "cuda.syncthreads()"]
        s //= 2
    return lines + ["acc = sh[0]", "cuda.syncthreads()"]


class _ReductionKernel:
    """One block per result element (``parts`` blocks each for few, long results): each thread
    accumulates a strided share of the reduced elements, computing and storing the prologue
    on the way; the block combines the shares by a tree; with parts, the last block to finish
    combines the partials in order; then the epilogue, and the row pass over the row."""

    def __init__(self, group, leaves, threads, max_blocks):
        self.name = group.name
        r = self.r = Reduction(group, leaves, zero=_u(0))
        self.n_out = math.prod(r.domain[a] for a in r.kept)
        self.n_red = math.prod(r.domain[a] for a in r.axes)
        self.threads = min(threads, max(32, 1 << max(self.n_red - 1, 0).bit_length()))  # short rows: smaller blocks
        self.parts = max(1, min(-(-MIN_BLOCKS // max(self.n_out, 1)), -(-self.n_red // (self.threads * 4))))
        self.blocks = max(1, min(self.n_out * self.parts, max_blocks))
        self.kernel = Kernel(CUDA)
        self.hoisted, self.point, self.reduced = r.prologue_point(self.kernel)
        self.combine = _COMBINE[r.root.op]
        self.red_shape = [r.domain[a] for a in r.axes]
        self.red_index = [f"i{a}" for a in r.axes]
        self.leaves = leaves

    def source(self) -> KernelSource:
        r, threads, parts = self.r, self.threads, self.parts
        lines = [f"sh = cuda.shared.array({threads}, dtype=np.{acc_dtype(r.root)})",
                 "t = np.uint64(cuda.threadIdx.x)", "w = np.uint64(cuda.blockIdx.x)",
                 f"while w < {_u(self.n_out * parts)}:"]
        finish, extras = self.finish(), ()
        if parts > 1:  # leave this block's partial; the last of a result's blocks combines them all
            extras = (("part", acc_dtype(r.root), self.n_out * parts), ("ticket", "uint32", self.n_out))
            lines.insert(1, "last = cuda.shared.array(1, dtype=np.int32)")
            finish = self.last_block(finish)
        lines += indent(self.share() + finish + ["w += np.uint64(cuda.gridDim.x)"], 1)
        return _kernel(self.name, self.kernel, r.outputs, r.out_shapes, self.hoisted + lines,
                       (self.blocks, threads), extras=extras)

    def share(self) -> list:
        """This thread's share of result ``q``'s reduced elements, into ``acc``, then the tree."""
        r, parts = self.r, self.parts
        accumulate = f"acc = {self.combine.format('acc', f'np.{acc_dtype(r.root)}({self.reduced})')}"
        share = ["q = w" if parts == 1 else f"q = w // {_u(parts)}"]
        share += _unravel("q", [r.domain[a] for a in r.kept], [f"i{a}" for a in r.kept]) if r.kept else []
        if parts == 1:
            share += ["r = t", f"while r < {_u(self.n_red)}:"]
        else:
            chunk = -(-self.n_red // parts)
            share += [f"p = w % {_u(parts)}", f"r = p * {_u(chunk)} + t",
                      f"while r < min(p * {_u(chunk)} + {_u(chunk)}, {_u(self.n_red)}):"]
        share = [f"acc = {acc_init(r.root)}"] + share
        share += indent(_unravel("r", self.red_shape, self.red_index) + self.point
                        + [accumulate, f"r += {_u(self.threads)}"], 1)
        return share + ["sh[t] = acc"] + _tree(r.root.op, self.threads)

    def finish(self) -> list:
        """The result, the epilogue (thread 0 stores them) and the row pass, split across the
        block's threads."""
        r, kernel = self.r, self.kernel
        result = kernel.local(r.root)
        finish = [f"{result} = {CTOR[r.root.dtype]}(acc)", "if t == 0:", f"    o0[{r.out_index}] = {result}"]
        finish += r.epilogue_lines(kernel)
        finish += ["if t == 0:"] + indent(kernel.store(r.finals, r.out_arg, r.result_index), 1)
        finish += ["    pass"] if not r.finals else []
        if r.row:
            point = kernel.row_point(r, self.leaves, r.index)
            finish += (["cuda.syncthreads()", "r = t", f"while r < {_u(math.prod(self.red_shape))}:"]
                       + indent(_unravel("r", self.red_shape, self.red_index) + point
                                + [f"r += {_u(self.threads)}"], 1))
        return finish

    def last_block(self, finish: list) -> list:
        """``finish`` run by the last of a result's blocks, after combining all their partials."""
        r, parts, threads = self.r, self.parts, self.threads
        return (["if t == 0:", "    part[w] = acc", "cuda.threadfence()", "if t == 0:",
                 f"    last[0] = 1 if cuda.atomic.add(ticket, q, np.uint32(1)) == np.uint32({parts - 1}) else 0",
                 "cuda.syncthreads()",
                 "if last[0] != 0:"]
                + indent([f"acc = {acc_init(r.root)}", "j = t", f"while j < {_u(parts)}:",
                          f"    acc = {self.combine.format('acc', f'part[q * {_u(parts)} + j]')}",
                          f"    j += {_u(threads)}", "sh[t] = acc"] + _tree(r.root.op, threads)
                         + ["if t == 0:", "    ticket[q] = 0"] + finish, 1))


def reduction_kernel(group, leaves, threads, max_blocks) -> KernelSource:
    return _ReductionKernel(group, leaves, threads, max_blocks).source()


# ---------------------------------------------------------------- library steps


def _pointwise(name, v, lines_at, threads, max_blocks) -> KernelSource:
    """A kernel with one thread per element of ``v``: ``lines_at(index, kernel)`` computes
    ``res`` at ``index`` (unsigned indices ``i0``..)."""
    shape = v.shape or (1,)
    index = [f"i{a}" for a in range(len(shape))]
    kernel = Kernel(CUDA)
    point = lines_at(index[:v.ndim], kernel)
    loop, blocks = _grid_stride(math.prod(shape), threads, max_blocks)
    lines = loop + indent(_unravel("k", shape, index) + point + [f"o0[{', '.join(index)}] = res", "k += step"], 1)
    return _kernel(name, kernel, [v], [shape], lines, (blocks, threads))


def _concat(v, index, kernel):
    axis, lines, start = v.attrs["axis"], [], 0
    for n, x in enumerate(v.inputs):
        stop = start + x.shape[axis]
        at = list(index)
        at[axis] = f"({index[axis]} - {_u(start)})" if start else index[axis]
        head = "if" if n == 0 else ("elif" if n < len(v.inputs) - 1 else "else")
        lines += [f"{head} {index[axis]} < {_u(stop)}:" if head != "else" else "else:",
                  f"    res = {kernel.read(x, at)}"]
        start = stop
    if len(v.inputs) == 1:
        lines = [f"res = {kernel.read(v.inputs[0], index)}"]
    return lines


def _pad(v, index, kernel):
    (x,) = v.inputs
    conds, at = [], []
    for i, n, lo, gap in zip(index, x.shape, v.attrs["low"], v.attrs["interior"]):
        s = gap + 1
        conds.append(f"{i} >= {_u(lo)} and ({i} - {_u(lo)}) % {_u(s)} == 0 and ({i} - {_u(lo)}) // {_u(s)} < {_u(n)}")
        at.append(f"({i} - {_u(lo)}) // {_u(s)}")
    inside = " and ".join(f"({c})" for c in conds) or "True"
    zero = literal(0, v.dtype)
    return [f"res = {zero}", f"if {inside}:", f"    res = {kernel.read(x, at)}"]


def _scatter(v, index, kernel):
    """scatter_add and index_add: each result element sums, in order, the updates aimed at it
    (loops ``m0 ..`` over the indices' positions)."""
    upd, idx = v.inputs
    axis = v.attrs["axis"]
    k = 1 if v.op == "scatter_add" else idx.ndim
    ms = [f"m{n}" for n in range(k)]
    at = list(index[:axis]) + ms + list(index[axis + 1:])
    pick = at if v.op == "scatter_add" else ms
    acc = "np.float64" if dt.is_float(v.dtype) else CTOR[v.dtype]
    un = UNSIGNED.get(v.dtype)
    add = "acc + np.float64(u)" if dt.is_float(v.dtype) else f"{CTOR[v.dtype]}({un}(acc) + {un}(u))"
    loops = [f"{'    ' * n}for {m} in range({_u(upd.shape[axis + n])}):" for n, m in enumerate(ms)]
    body = ([f"j = np.int64({kernel.read(idx, pick)})"] + check_index(kernel, v, "j", v.attrs["size"])
            + [f"if np.uint64(j) == {index[axis]}:", f"    u = {kernel.read(upd, at)}", f"    acc = {add}"])
    return [f"acc = {acc}(0)"] + loops + indent(body, k) + [f"res = {CTOR[v.dtype]}(acc)"]


_POINTWISE = {**POINTWISE, "concat": _concat, "pad": _pad, "scatter_add": _scatter, "index_add": _scatter}


def matmul_kernel(name, v, side: int, reach: int) -> KernelSource:
    """A ``side`` x ``side`` block computes a tile of ``side * reach`` squared results, each
    thread ``reach`` x ``reach`` of them (rows ``ty + side * r``, columns ``tx + side * c``) in
    named accumulators, so they live in registers. K advances ``side`` at a time through two
    shared tiles; neighbouring threads load neighbouring elements (coalesced) and read the tiles
    without bank conflicts."""
    a, b = v.inputs
    m, n, kdim = v.shape[-2], v.shape[-1], a.shape[-1]
    batch = v.shape[:-2]
    nb = math.prod(batch)
    bidx = [f"b{k}" for k in range(len(batch))]
    edge = side * reach
    kernel = Kernel(CUDA)
    zero = literal(0, v.dtype)
    rows = [f"ty + {_u(side * r)}" for r in range(reach)]
    cols = [f"tx + {_u(side * c)}" for c in range(reach)]
    lines = [f"sa = cuda.shared.array(({side}, {edge}), dtype=np.{v.dtype})",
             f"sb = cuda.shared.array(({side}, {edge}), dtype=np.{v.dtype})",
             "tx = np.uint64(cuda.threadIdx.x)", "ty = np.uint64(cuda.threadIdx.y)",
             f"j0 = np.uint64(cuda.blockIdx.x) * {_u(edge)}", f"i0 = np.uint64(cuda.blockIdx.y) * {_u(edge)}",
             "z = np.uint64(cuda.blockIdx.z)", f"while z < {_u(nb)}:"]
    inner = _unravel("z", batch, bidx) if batch else []
    inner += [f"c{r}_{c} = {zero}" for r in range(reach) for c in range(reach)]
    loop = []
    for r, row in enumerate(rows):
        loop += [f"if i0 + {row} < {_u(m)} and k0 + tx < {_u(kdim)}:",
                 f"    sa[tx, {row}] = {kernel.read(a, bidx + [f'i0 + {row}', 'k0 + tx'])}",
                 "else:", f"    sa[tx, {row}] = {zero}"]
    for c, col in enumerate(cols):
        loop += [f"if k0 + ty < {_u(kdim)} and j0 + {col} < {_u(n)}:",
                 f"    sb[ty, {col}] = {kernel.read(b, bidx + ['k0 + ty', f'j0 + {col}'])}",
                 "else:", f"    sb[ty, {col}] = {zero}"]
    step = [f"fa{r} = sa[kk, {row}]" for r, row in enumerate(rows)]  # (a<k>, b<k> name arguments, batch indices)
    step += [f"fb{c} = sb[kk, {col}]" for c, col in enumerate(cols)]
    step += [f"c{r}_{c} += fa{r} * fb{c}" for r in range(reach) for c in range(reach)]
    loop += ["cuda.syncthreads()", f"for kk in range({side}):"] + indent(step, 1) + ["cuda.syncthreads()"]
    inner += [f"for k0 in range(np.uint64(0), {_u(kdim)}, {_u(side)}):"] + indent(loop, 1)
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            inner += [f"if i0 + {row} < {_u(m)} and j0 + {col} < {_u(n)}:",
                      f"    o0[{', '.join(bidx + [f'i0 + {row}', f'j0 + {col}'])}] = {CTOR[v.dtype]}(c{r}_{c})"]
    lines += indent(inner + ["z += np.uint64(cuda.gridDim.z)"], 1)
    launch = ((-(-n // edge), -(-m // edge), max(1, min(nb, MAX_BLOCKS))), (side, side))
    return _kernel(name, kernel, [v], [v.shape], lines, launch)


def view_copy_kernel(v, threads=THREADS, max_blocks=MAX_BLOCKS) -> KernelSource:
    """Copy ``v`` (a view, an argument or a constant) into a buffer of its own: for outputs."""
    return _pointwise(None, v, lambda index, kernel: [f"res = {kernel.read(v, index)}"], threads, max_blocks)


def library_kernel(group, threads, max_blocks) -> KernelSource:
    (v,) = group.roots
    if v.op == "matmul":
        side = math.isqrt(threads)
        return matmul_kernel(group.name, v, side, min(REACH, side))
    try:
        rule = _POINTWISE[v.op]
    except KeyError:
        raise CompileError(f"%{v.id}: no CUDA lowering for op {v.op!r}") from None
    return _pointwise(group.name, v, lambda index, kernel: rule(v, index, kernel), threads, max_blocks)


def kernel_source(group, leaves, threads: int = THREADS, max_blocks: int = MAX_BLOCKS) -> KernelSource:
    """The CUDA kernel of a loop or library step."""
    if group.kind == "library":
        return library_kernel(group, threads, max_blocks)
    make = elementwise_kernel if group.reduction is None else reduction_kernel
    return make(group, leaves, threads, max_blocks)
