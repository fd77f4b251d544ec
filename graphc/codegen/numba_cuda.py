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
- concat, pad, take_along_axis, scatter_add, argmax/argmin: one thread per result
  element. scatter_add gathers (each result sums the updates aimed at it, in order) instead of
  racing with atomics, so it is deterministic; index ops check their indices on the device and
  record the first bad one in an error array the runtime reads after the call.

Indices are unsigned 64-bit like the CPU kernels' (numba would turn a mix of signed and
unsigned into floats). Identifiers are made here; constants are validated literals.
"""

import math

from ..errors import CompileError
from ..ir import dtypes as dt
from ..ir.ops import INDEXED_VIEWS
from .numba_cpu import (CTOR, INDEXED_OPS, LOWER, LOWER_INT, MAXIMUM, MINIMUM, UNSIGNED, KernelSource, Reduction,
                        acc_dtype, acc_init, access, arg_shape, assign, faults, indent, is_literal, literal, loads,
                        row_point, with_faults)
from .powers import power_template


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


# helpers written out in place: device functions would make numba ask the driver for the
# device while compiling, and PTX could not be checked on a machine without a GPU (cuda_ptx.py)
_LOWER_CUDA = {**LOWER,
               "sigmoid": "{one} / ({one} + math.exp(-{0})) if {0} >= {zero} else "
                          "math.exp({0}) / ({one} + math.exp({0}))",
               "softplus": "max({0}, {zero}) + math.log1p(math.exp(-abs({0})))"}


def cuda_template(v) -> str:
    """The CUDA lowering of ``v``'s op: libdevice's float32 functions are fast and vectorization
    is no concern here, so only integer wrapping differs from the plain table."""
    try:
        template = _LOWER_CUDA[v.op]
    except KeyError:
        raise CompileError(f"%{v.id}: no CUDA lowering for op {v.op!r}") from None
    if v.op == "pow" and (reduced := power_template(v, fma=False)) is not None:
        return reduced
    return LOWER_INT.get(v.op, template) if v.dtype in UNSIGNED else template


def _u(n) -> str:
    return f"np.uint64({n})"


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


def _kernel(group_name, outputs, bases, in_shapes, out_shapes, lines, launch, extras=(),
            checked=None) -> KernelSource:
    """The kernel's source and call: outputs ``o<k>``, base arrays ``a<k>``, then ``extras``
    ((name, dtype, size): zeroed scratch the runtime allocates with the arena; ``err`` added
    when ``checked``, the kernel's faults, has any), launched as ``launch`` = (blocks, threads),
    each an int or a tuple."""
    args, checks = with_faults([f"o{k}" for k in range(len(outputs))] + [f"a{k}" for k in range(len(bases))]
                            + [e[0] for e in extras], checked)
    head = ["@cuda.jit(cache=True)", f"def kernel({', '.join(args)}):"]
    src = PRELUDE.format(math=MATH[simulator()]) + "\n\n" + "\n".join(head + indent(lines, 1)) + "\n"
    ks = KernelSource(group_name, src, list(outputs), bases, in_shapes, out_shapes, list(extras) + list(checks),
                      checked)
    ks.launch = launch
    return ks


def _grid_stride(n: int, threads: int, max_blocks: int) -> tuple[list, int]:
    """A grid-stride loop over ``n`` items (index ``k``) and the blocks to launch for it."""
    lines = ["k = np.uint64(cuda.grid(1))", "step = np.uint64(cuda.gridsize(1))", f"while k < {_u(n)}:"]
    return lines, max(1, min(-(-n // threads), max_blocks))


def elementwise_kernel(group, leaves, threads, max_blocks) -> KernelSource:
    shape = group.roots[0].shape
    flat = all(leaf.op not in INDEXED_VIEWS and leaf.op != "reshape"
               or is_literal(through(leaf, ["0"] * leaf.ndim)[0]) for leaf in leaves)
    flat = flat and not any(v.op in INDEXED_OPS for v in group.values)
    domain = (math.prod(shape),) if flat or not shape else shape
    index = [f"i{a}" for a in range(len(domain))]
    names, bases = {}, []
    hoisted, point = loads(leaves, names, index, bases, through=through)
    point += assign(group.values, names, cuda_template, index)
    point += [f"o{k}[{', '.join(index)}] = {names[r.id]}" for k, r in enumerate(group.roots)]
    loop, blocks = _grid_stride(math.prod(domain), threads, max_blocks)
    lines = hoisted + loop + indent(_unravel("k", domain, index) + point + ["k += step"], 1)
    return _kernel(group.name, group.roots, bases, [arg_shape(b, flat) for b in bases],
                   [domain] * len(group.roots), lines, (blocks, threads), checked=faults(group.values))


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


def reduction_kernel(group, leaves, threads, max_blocks) -> KernelSource:
    r = Reduction(group, leaves, zero=_u(0))
    root, x, domain, axes, kept, index = r.root, r.x, r.domain, r.axes, r.kept, r.index
    n_out, n_red = math.prod(domain[a] for a in kept), math.prod(domain[a] for a in axes)
    threads = min(threads, max(32, 1 << max(n_red - 1, 0).bit_length()))  # short rows: smaller blocks
    parts = max(1, min(-(-MIN_BLOCKS // max(n_out, 1)), -(-n_red // (threads * 4))))
    out_arg, names, bases = r.out_arg, {}, []
    pro_leaves, epi_leaves, prologue, epilogue, stored, finals = (r.pro_leaves, r.epi_leaves, r.prologue,
                                                                  r.epilogue, r.stored, r.finals)
    hoisted, point = loads(pro_leaves, names, index, bases, through=through)
    point += assign(prologue, names, cuda_template, index)
    point += [f"{out_arg[v.id]}[{', '.join(index)}] = {names[v.id]}" for v in stored]
    reduced = names[x.id]
    combine = _COMBINE[root.op]
    accumulate = f"acc = {combine.format('acc', f'np.{acc_dtype(root)}({reduced})')}"

    red_shape = [domain[a] for a in axes]
    red_index = [f"i{a}" for a in axes]
    lines = [f"sh = cuda.shared.array({threads}, dtype=np.{acc_dtype(root)})",
             "t = np.uint64(cuda.threadIdx.x)", "w = np.uint64(cuda.blockIdx.x)",
             f"while w < {_u(n_out * parts)}:"]
    share = ["q = w" if parts == 1 else f"q = w // {_u(parts)}"]
    share += _unravel("q", [domain[a] for a in kept], [f"i{a}" for a in kept]) if kept else []
    if parts == 1:
        share += ["r = t", f"while r < {_u(n_red)}:"]
    else:
        chunk = -(-n_red // parts)
        share += [f"p = w % {_u(parts)}", f"r = p * {_u(chunk)} + t",
                  f"while r < min(p * {_u(chunk)} + {_u(chunk)}, {_u(n_red)}):"]
    share = [f"acc = {acc_init(root)}"] + share
    share += indent(_unravel("r", red_shape, red_index) + point + [accumulate, f"r += {_u(threads)}"], 1)
    share += ["sh[t] = acc"] + _tree(root.op, threads)

    names[root.id] = f"v{root.id}"
    finish = [f"v{root.id} = {CTOR[root.dtype]}(acc)", "if t == 0:", f"    o0[{r.out_index}] = v{root.id}"]
    finish += sum(loads(epi_leaves, names, r.result_index, bases, prefix="e", through=through), [])
    finish += assign(epilogue, names, cuda_template, r.result_index)
    finish += ["if t == 0:"] + [f"    {out_arg[v.id]}[{', '.join(r.result_index)}] = {names[v.id]}" for v in finals]
    finish += ["    pass"] if not finals else []
    if group.row:
        finish += _row_pass(group, leaves, names, index, bases, out_arg, stored, red_shape, red_index, threads)
    extras = ()
    if parts > 1:  # leave this block's partial; the last of a result's blocks combines them all
        extras = (("part", acc_dtype(root), n_out * parts), ("ticket", "uint32", n_out))
        lines.insert(1, "last = cuda.shared.array(1, dtype=np.int32)")
        finish = (["if t == 0:", "    part[w] = acc", "cuda.threadfence()", "if t == 0:",
                   f"    last[0] = 1 if cuda.atomic.add(ticket, q, np.uint32(1)) == np.uint32({parts - 1}) else 0",
                   "cuda.syncthreads()",
                   "if last[0] != 0:"]
                  + indent([f"acc = {acc_init(root)}", "j = t", f"while j < {_u(parts)}:",
                            f"    acc = {combine.format('acc', f'part[q * {_u(parts)} + j]')}",
                            f"    j += {_u(threads)}", "sh[t] = acc"] + _tree(root.op, threads)
                           + ["if t == 0:", "    ticket[q] = 0"] + finish, 1))
    lines += indent(share + finish + ["w += np.uint64(cuda.gridDim.x)"], 1)
    blocks = max(1, min(n_out * parts, max_blocks))
    return _kernel(group.name, r.outputs, bases, [arg_shape(b, False) for b in bases], r.out_shapes,
                   hoisted + lines, (blocks, threads), extras, faults(group.values))


def _row_pass(group, leaves, names, index, bases, out_arg, stored, red_shape, red_index, threads) -> list:
    """The row epilogue: the block's threads walk the reduced elements again."""
    point = row_point(group, leaves, names, index, bases, out_arg, stored, cuda_template, through)
    return (["cuda.syncthreads()", "r = t", f"while r < {_u(math.prod(red_shape))}:"]
            + indent(_unravel("r", red_shape, red_index) + point + [f"r += {_u(threads)}"], 1))


# ---------------------------------------------------------------- library steps


def _read(v, index: list, bases: list) -> str:
    """An expression reading value ``v`` at ``index`` (through its views) from argument ``a<k>``."""
    base, at = through(v, index)
    if is_literal(base):
        return literal(base.attrs["value"][()], base.dtype)
    k = next((j for j, b in enumerate(bases) if b is base), len(bases))
    if k == len(bases):
        bases.append(base)
    return f"a{k}[{', '.join(at) or '0'}]"


def _pointwise(v, lines_at, threads, max_blocks, checked=None) -> KernelSource:
    """A kernel with one thread per element of ``v``: ``lines_at(index, bases)`` computes
    ``res`` at ``index`` (unsigned indices ``i0``..)."""
    shape = v.shape or (1,)
    index = [f"i{a}" for a in range(len(shape))]
    bases = []
    point = lines_at(index[:v.ndim], bases)
    loop, blocks = _grid_stride(math.prod(shape), threads, max_blocks)
    lines = loop + indent(_unravel("k", shape, index) + point + [f"o0[{', '.join(index)}] = res", "k += step"], 1)
    return _kernel(None, [v], bases, [arg_shape(b, False) for b in bases], [shape], lines,
                   (blocks, threads), checked=checked)


def _check(v, idx: str, size: int) -> list:
    """Record an out-of-range index (the runtime raises DataError after the call) and read 0."""
    return [f"if {idx} < 0 or {idx} >= {size}:", f"    err[0] = {v.id + 1}", f"    err[1] = {idx}", f"    {idx} = 0"]


def _concat(v, index, bases):
    axis, lines, start = v.attrs["axis"], [], 0
    for n, x in enumerate(v.inputs):
        stop = start + x.shape[axis]
        at = list(index)
        at[axis] = f"({index[axis]} - {_u(start)})" if start else index[axis]
        head = "if" if n == 0 else ("elif" if n < len(v.inputs) - 1 else "else")
        lines += [f"{head} {index[axis]} < {_u(stop)}:" if head != "else" else "else:",
                  f"    res = {_read(x, at, bases)}"]
        start = stop
    if len(v.inputs) == 1:
        lines = [f"res = {_read(v.inputs[0], index, bases)}"]
    return lines


def _pad(v, index, bases):
    (x,) = v.inputs
    conds, at = [], []
    for i, n, lo, gap in zip(index, x.shape, v.attrs["low"], v.attrs["interior"]):
        s = gap + 1
        conds.append(f"{i} >= {_u(lo)} and ({i} - {_u(lo)}) % {_u(s)} == 0 and ({i} - {_u(lo)}) // {_u(s)} < {_u(n)}")
        at.append(f"({i} - {_u(lo)}) // {_u(s)}")
    inside = " and ".join(f"({c})" for c in conds) or "True"
    zero = literal(0, v.dtype)
    return [f"res = {zero}", f"if {inside}:", f"    res = {_read(x, at, bases)}"]


def _take(v, index, bases):
    x, idx = v.inputs
    axis = v.attrs["axis"]
    at = list(index)
    at[axis] = "np.uint64(j)"
    return ([f"j = np.int64({_read(idx, index, bases)})"] + _check(v, "j", x.shape[axis])
            + [f"res = {_read(x, at, bases)}"])


def _scatter(v, index, bases):
    upd, idx = v.inputs
    axis = v.attrs["axis"]
    at = list(index)
    at[axis] = "m"
    acc = "np.float64" if dt.is_float(v.dtype) else CTOR[v.dtype]
    u = UNSIGNED.get(v.dtype)
    add = "acc + np.float64(u)" if dt.is_float(v.dtype) else f"{CTOR[v.dtype]}({u}(acc) + {u}(u))"
    return ([f"acc = {acc}(0)", f"for m in range({_u(upd.shape[axis])}):",
             f"    j = np.int64({_read(idx, at, bases)})"]
            + indent(_check(v, "j", v.attrs["size"]), 1)
            + [f"    if np.uint64(j) == {index[axis]}:", f"        u = {_read(upd, at, bases)}",
               f"        acc = {add}", f"res = {CTOR[v.dtype]}(acc)"])


def _arg(v, index, bases):
    (x,) = v.inputs
    axis, keep = v.attrs["axis"], v.attrs["keepdims"]
    outer = list(index) if keep else index[:axis] + ["0"] + index[axis:]
    at = [("m" if a == axis else i) for a, i in enumerate(outer)]
    first = [("np.uint64(0)" if a == axis else i) for a, i in enumerate(outer)]
    better = ">" if v.op == "argmax" else "<"
    nan = " or y != y" if dt.is_float(x.dtype) else ""
    still = "best == best and " if dt.is_float(x.dtype) else ""
    return ([f"best = {_read(x, first, bases)}", "res = np.int64(0)",
             f"for m in range(np.uint64(1), {_u(x.shape[axis])}):", f"    y = {_read(x, at, bases)}",
             f"    if {still}(y {better} best{nan}):", "        best = y", "        res = np.int64(m)"])


_POINTWISE = {"concat": _concat, "pad": _pad, "take_along_axis": _take,
              "scatter_add": _scatter, "argmax": _arg, "argmin": _arg}
_CHECKED = {"take_along_axis": lambda v: v.inputs[0].shape[v.attrs["axis"]],
            "scatter_add": lambda v: v.attrs["size"]}


def matmul_kernel(v, side: int, reach: int) -> KernelSource:
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
    bases = []
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
                 f"    sa[tx, {row}] = {_read(a, bidx + [f'i0 + {row}', 'k0 + tx'], bases)}",
                 "else:", f"    sa[tx, {row}] = {zero}"]
    for c, col in enumerate(cols):
        loop += [f"if k0 + ty < {_u(kdim)} and j0 + {col} < {_u(n)}:",
                 f"    sb[ty, {col}] = {_read(b, bidx + ['k0 + ty', f'j0 + {col}'], bases)}",
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
    return _kernel(None, [v], bases, [arg_shape(x, False) for x in bases], [v.shape], lines, launch)


def view_copy_kernel(v, threads=THREADS, max_blocks=MAX_BLOCKS) -> KernelSource:
    """Copy ``v`` (a view, an argument or a constant) into a buffer of its own: for outputs."""
    return _pointwise(v, lambda index, bases: [f"res = {_read(v, index, bases)}"], threads, max_blocks)


def library_kernel(group, threads, max_blocks) -> KernelSource:
    (v,) = group.roots
    if v.op == "matmul":
        side = math.isqrt(threads)
        ks = matmul_kernel(v, side, min(REACH, side))
    else:
        try:
            rule = _POINTWISE[v.op]
        except KeyError:
            raise CompileError(f"%{v.id}: no CUDA lowering for op {v.op!r}") from None
        checked = ({v.id + 1: f"%{v.id} ({v.op}): index {{}} is out of range [0, {_CHECKED[v.op](v)})"}
                   if v.op in _CHECKED else None)
        ks = _pointwise(v, lambda index, bases: rule(v, index, bases), threads, max_blocks, checked)
    ks.name = group.name
    return ks


def kernel_source(group, leaves, threads: int = THREADS, max_blocks: int = MAX_BLOCKS) -> KernelSource:
    """The CUDA kernel of a loop or library step."""
    if group.kind == "library":
        return library_kernel(group, threads, max_blocks)
    make = elementwise_kernel if group.reduction is None else reduction_kernel
    return make(group, leaves, threads, max_blocks)
