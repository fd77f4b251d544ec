"""The target-neutral part of code generation: what a kernel is, how it reads its operands, and
the scalar lowering of each op, shared by the CPU and CUDA emitters (``numba_cpu``,
``numba_cuda``), which override only what differs (as tinygrad's renderers do).

- ``KernelSource``: a generated kernel's source and how the runtime calls it.
- ``access``: reading a value through its broadcast/transpose/slice views by index arithmetic
  on the array underneath; an emitter may follow more (CUDA also follows ``reshape``).
- ``LOWER``: each elementwise op as a format string over its operands' names; an ``Emitter``
  picks an op's template for its dtype and target, and writes the lines of one point.
- ``Kernel``: one kernel being written: the names given to values and the base arrays taken
  as arguments (``a0``, ``a1``, ...), with the loads and assignments of a point.
- ``Reduction``: a reduction group taken apart into its phases (prologue, accumulation,
  epilogue, row epilogue), with the index expressions and output arguments of each.

Every intermediate is rounded to its IR dtype (``np.float32(...)``, ``np.int32(...)``), so a
kernel computes what the reference interpreter computes op by op. Identifiers in the source
are made here and in the emitters (``a0``, ``o1``, ``v17``, ``i2``); constants are numeric
literals validated here; nothing from the graph is pasted into the source.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import CompileError, DataError
from ..ir import dtypes as dt
from ..ir.ops import INDEXED_VIEWS, NEGATIVE_POWER
from .literals import CTOR, literal
from .powers import power_template

# IEEE 754-2019 maximum and minimum (as the reference, ``ir/ops.py``): NaN wins, and -0 < +0,
# so a tie of zeros is their sum (-0 only if both are) for the maximum, and minus the sum of
# their negations for the minimum. Written out rather than as helpers: CUDA kernels use them too.
MAXIMUM = ("{0} if {0} != {0} or {0} > {1} else "
           "({1} if {1} != {1} or {1} > {0} else ({0} + {1} if {0} == 0 else {0}))")
MINIMUM = ("{0} if {0} != {0} or {0} < {1} else "
           "({1} if {1} != {1} or {1} < {0} else (-(-{0} - {1}) if {0} == 0 else {0}))")

# op -> a format string over operand expressions {0}, {1}, {2}
LOWER = {
    "neg": "-{0}", "exp": "math.exp({0})", "log": "math.log({0})", "sqrt": "math.sqrt({0})",
    "rsqrt": "{one} / math.sqrt({0})", "abs": "abs({0})", "tanh": "math.tanh({0})",
    "sign": "{0} if {0} != {0} else ({one} if {0} > {zero} else ({zero} - {one} if {0} < {zero} else {zero}))",
    "sigmoid": "_sigmoid({0})", "relu": "{0} if not {0} <= {zero} else {zero}",  # relu(-0) = +0, relu(nan) = nan
    "square": "{0} * {0}", "reciprocal": "{one} / {0}",
    "sin": "math.sin({0})", "cos": "math.cos({0})", "log1p": "math.log1p({0})", "expm1": "math.expm1({0})",
    "softplus": "_softplus({0})", "erf": "math.erf({0})", "stop_gradient": "{0}", "checkpoint": "{0}",
    "copy": "{0}",
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}", "pow": "{0} ** {1}",
    "maximum": MAXIMUM, "minimum": MINIMUM,
    "lt": "{0} < {1}", "le": "{0} <= {1}", "gt": "{0} > {1}", "ge": "{0} >= {1}", "eq": "{0} == {1}",
    "ne": "{0} != {1}", "where": "{1} if {0} else {2}", "cast": "{0}",
    "one_hot": "{one} if np.uint64({0}) == {last} else {zero}",  # {last}: the index along the new axis
}
# numba marks signed integer arithmetic no-signed-wrap, so LLVM may assume overflow never
# happens; numpy wraps. Unsigned arithmetic wraps, so integer +, -, * go through it.
LOWER_INT = {"add": "{u}({0}) + {u}({1})", "sub": "{u}({0}) - {u}({1})", "mul": "{u}({0}) * {u}({1})",
             "neg": "{u}(0) - {u}({0})", "square": "{u}({0}) * {u}({0})",
             "pow": "{0} ** {1} if {1} >= {zero} else {zero}"}  # a negative exponent: a fault (INT_FAULTS)
# ops undefined on some integer operands: op -> (when, over the operand expressions, {zero} and
# the op's int attributes; the operand the message names; the message, "{}" standing for that
# operand). The kernel records the fault in ``err`` and computes on; the runtime raises the
# DataError the interpreter raises.
INT_FAULTS = {"pow": ("{1} < {zero}", "{1}", NEGATIVE_POWER),
              "one_hot": ("{0} < {zero} or {0} >= {depth}", "{0}", "index {} is out of range [0, {depth})")}
INDEXED_OPS = ("one_hot",)  # elementwise ops whose lowering reads the loop index: no flat loop
ERR = ("err", "int64", 2)  # the extra argument recording a fault: (its code, the operand; 0 while none)
UNSIGNED = {"int32": "np.uint32", "int64": "np.uint64"}


@dataclass
class KernelSource:
    """Generated source of one kernel and how to call it."""

    name: str | None  # the step it runs
    source: str
    outputs: list  # values, in argument order
    inputs: list  # base arrays, in argument order
    in_shapes: list  # how the runtime shapes each argument
    out_shapes: list
    extras: list = field(default_factory=list)  # (name, dtype, size): zeroed arrays passed after the inputs
    faults: dict = field(default_factory=dict)  # fault code -> its message, "{}" standing for the operand (see ERR)
    scalar_calls: list = field(default_factory=list)  # CPU: values whose lowering calls libm in the loop
    launch: tuple | None = None  # CUDA: (blocks, threads), each an int or a tuple

    def error(self, err) -> DataError | None:
        """The DataError of the fault ``err`` (the ERR array, read on the host) records, if any."""
        code, operand = int(err[0]), int(err[1])
        return DataError(self.faults[code].format(operand)) if code else None


# ---------------------------------------------------------------- reading operands


def access(v, index: list) -> tuple:
    """Follow ``v``'s broadcast/transpose/slice views down to the array they read:
    ``(base value, index expressions into it)`` for reading ``v`` at ``index``."""
    while v.op in INDEXED_VIEWS:
        src = v.inputs[0]
        if v.op == "broadcast_to":
            lead = v.ndim - src.ndim
            index = ["0" if d == 1 and v.shape[lead + k] != 1 else index[lead + k] for k, d in enumerate(src.shape)]
        elif v.op == "transpose":
            inner = [None] * src.ndim
            for j, p in enumerate(v.attrs["perm"]):
                inner[p] = index[j]
            index = inner
        elif v.op == "slice":
            index = [_affine(b, s_, i) for b, s_, i in zip(v.attrs["starts"], v.attrs["steps"], index)]
        elif v.op == "windows":
            k = len(v.attrs["window"])
            lead, offsets, places = index[:len(index) - 2 * k], index[len(index) - 2 * k:-k], index[-k:]
            index = lead + [_sum_of(_affine(0, s, j), _affine(0, d, i))
                            for i, j, s, d in zip(offsets, places, v.attrs["strides"], v.attrs["dilation"])]
        v = src
    return v, index


def _affine(start: int, step: int, i: str) -> str:
    """``start + step * i`` in unsigned arithmetic (loop indices are unsigned, see ``_loops``)."""
    scaled = i if abs(step) == 1 else f"np.uint64({abs(step)}) * {i}"
    if step > 0:
        return scaled if start == 0 else f"{scaled} + np.uint64({start})"
    return f"np.uint64({start}) - {scaled}"


def _sum_of(a: str, b: str) -> str:
    return f"({a}) + ({b})"


def is_literal(base) -> bool:
    """Scalar constants (however broadcast) are emitted as literals, not passed as arrays."""
    return base.op == "const" and base.ndim == 0


def arg_shape(base, flat: bool):
    """How the runtime shapes a base array for the kernel (0-d bases are read at [0])."""
    return (base.size,) if flat else (base.shape or (1,))


def indent(lines, n):
    return ["    " * n + line for line in lines]


# ---------------------------------------------------------------- faults


def _fault_message(v) -> str:
    """The message of checked value ``v``'s fault (see ``INT_FAULTS``), "{}" for the operand."""
    return f"%{v.id} ({v.op}): " + INT_FAULTS[v.op][2].format("{}", **_int_attrs(v, str))


def _int_attrs(v, spell) -> dict:
    """``v``'s int attributes (one_hot's depth), each spelled by ``spell``, for INT_FAULTS."""
    return {k: spell(a) for k, a in v.attrs.items() if isinstance(a, int) and not isinstance(a, bool)}


def _checked(v) -> bool:
    """Whether the kernel computing ``v`` checks its operands (``INT_FAULTS``)."""
    return v.op in INT_FAULTS and v.inputs[0].dtype in dt.INTS


# ---------------------------------------------------------------- the scalar lowering


class Emitter:
    """A target's scalar lowering: ``LOWER`` with the target's own templates over it (by op,
    and by op for one dtype), and how its kernels follow views (``through``)."""

    target = "?"
    lower = LOWER  # op -> template
    by_dtype: dict = {}  # dtype -> {op: template} for that dtype
    fma = False  # may constant powers use the fma intrinsic (powers.py)

    def template(self, v) -> str:
        """The lowering of ``v``'s op for its dtype (a format string, see ``LOWER``)."""
        try:
            template = self.lower[v.op]
        except KeyError:
            raise CompileError(f"%{v.id}: no {self.target} lowering for op {v.op!r}") from None
        if v.op == "pow" and (reduced := power_template(v, fma=self.fma)) is not None:
            return reduced
        if v.dtype in UNSIGNED:
            return LOWER_INT.get(v.op, template)
        return self.by_dtype.get(v.dtype, {}).get(v.op, template)

    def through(self, v, index: list) -> tuple:
        """(base value, index expressions into it) for reading ``v`` at ``index``."""
        return access(v, index)

    def expr(self, v, names, index=()) -> str:
        """The expression computing elementwise ``v`` from its operands' names, rounded to its
        dtype; ``index``: the loop indices at the point (``one_hot`` reads the last)."""
        if v.op == "cast":
            src = v.inputs[0]
            operand = names[src.id]
            if v.dtype == "bool":
                return f"{operand} != 0"
            if src.dtype == "bool":
                return f"{literal(1, v.dtype)} if {operand} else {literal(0, v.dtype)}"
            return f"{CTOR[v.dtype]}({operand})"
        text = self.template(v).format(*(names[i.id] for i in v.inputs), u=UNSIGNED.get(v.dtype),
                                       zero=literal(0, v.dtype), one=literal(1, v.dtype),
                                       last=index[-1] if index else None)
        return text if v.dtype == "bool" else f"{CTOR[v.dtype]}({text})"


@dataclass
class Elementwise:
    """An elementwise group at one point of its domain: ``kernel`` with its loads and names,
    the domain (flattened to one axis when every leaf is read directly, with no index
    arithmetic), its ``index`` names, and the lines (hoisted loads; the point's loads, values and
    stores to outputs ``o<k>``)."""

    kernel: "Kernel"
    domain: tuple
    flat: bool
    index: list
    hoisted: list
    point: list

    @property
    def in_shapes(self) -> list:
        return [arg_shape(b, self.flat) for b in self.kernel.bases]


def _read_directly(emitter: "Emitter", leaf) -> bool:
    """Whether ``emitter`` reads ``leaf`` as it is, by its own index (or as a literal)."""
    base = emitter.through(leaf, ["0"] * leaf.ndim)[0]
    return base is leaf or is_literal(base)


def elementwise(emitter: "Emitter", group, leaves) -> Elementwise:
    """The point of elementwise group ``group`` as ``emitter`` writes it."""
    shape = group.roots[0].shape
    flat = all(_read_directly(emitter, leaf) for leaf in leaves) and not any(v.op in INDEXED_OPS for v in group.values)
    domain = (math.prod(shape),) if flat or not shape else shape
    index = [f"i{a}" for a in range(len(domain))]
    kernel = Kernel(emitter)
    hoisted, point = kernel.loads(leaves, index)
    point += kernel.assign(group.values, index)
    point += kernel.store(group.roots, {r.id: f"o{k}" for k, r in enumerate(group.roots)}, index)
    return Elementwise(kernel, domain, flat, index, hoisted, point)


class Kernel:
    """One kernel being written: ``names`` (value id -> the local or literal holding it at the
    current point), ``bases`` (the arrays it takes as arguments ``a0``, ``a1``, ...) and
    ``faults`` (code -> message of each fault it records in ``err``).

    Locals and fault codes are numbered in the order the kernel first meets them, never after
    graph value ids, so the same computation on other values (an unrolled loop's steps, a
    network's blocks) is the same source, compiled once (``codegen/cache.py``)."""

    def __init__(self, emitter: Emitter):
        self.emitter = emitter
        self.names, self.bases, self.faults = {}, [], {}
        self._locals, self._codes = {}, {}  # value id -> its local's name; fault key -> its code

    def local(self, v) -> str:
        """The name of the local holding ``v`` (the same each time it is computed)."""
        name = self.names[v.id] = self._locals.setdefault(v.id, f"v{len(self._locals)}")
        return name

    def fault(self, key, message: str) -> int:
        """The code of the fault ``key`` (a value id), recorded with ``message`` on first use."""
        if key not in self._codes:
            self._codes[key] = len(self._codes) + 1
            self.faults[self._codes[key]] = message
        return self._codes[key]

    def base_arg(self, base) -> str:
        """The argument name of base array ``base``, taken on first use."""
        k = next((j for j, b in enumerate(self.bases) if b is base), len(self.bases))
        if k == len(self.bases):
            self.bases.append(base)
        return f"a{k}"

    def loads(self, leaves, index: list, prefix: str = "x", produced=None) -> tuple[list, list]:
        """Read each leaf at ``index`` through its views; its base array is an argument, or the
        output argument named in ``produced`` when this kernel computes it. Scalar constants
        become literals. Returns (loads that do not depend on the loop indices, to hoist before
        the loops; loads per point)."""
        hoisted, lines = [], []
        loop_vars = set(index)
        for n, leaf in enumerate(leaves):
            base, at = self.emitter.through(leaf, index[:leaf.ndim])  # one_hot's labels: the leading indices
            if is_literal(base):
                self.names[leaf.id] = literal(base.attrs["value"][()], base.dtype)
                continue
            array = produced[base.id] if produced and base.id in produced else self.base_arg(base)
            self.names[leaf.id] = f"{prefix}{n}"
            invariant = not any(var in part for part in at for var in loop_vars)
            (hoisted if invariant else lines).append(f"{prefix}{n} = {array}[{', '.join(at) or '0'}]")
        return hoisted, lines

    def read(self, v, index: list) -> str:
        """An expression reading ``v`` at ``index`` (through its views), for library kernels."""
        base, at = self.emitter.through(v, index)
        if is_literal(base):
            return literal(base.attrs["value"][()], base.dtype)
        return f"{self.base_arg(base)}[{', '.join(at) or '0'}]"

    def assign(self, values, index=()) -> list:
        """Assignments computing ``values`` (inlined elementwise values and roots) at one point,
        whose loop indices are ``index``; a checked value records its fault in ``err``."""
        lines, names = [], self.names
        for v in values:
            if _checked(v):
                when, operand, _ = INT_FAULTS[v.op]
                x = v.inputs[0].dtype
                fields = dict(zero=literal(0, x), **_int_attrs(v, lambda a: literal(a, x)))
                operands = [names[i.id] for i in v.inputs]
                lines += [f"if {when.format(*operands, **fields)}:",
                          f"    err[0] = {self.fault(v.id, _fault_message(v))}",
                          f"    err[1] = {operand.format(*operands, **fields)}"]
            expr = self.emitter.expr(v, names, index)
            lines.append(f"{self.local(v)} = {expr}")
        return lines

    def store(self, values, out_arg: dict, index: list) -> list:
        """Lines storing each of ``values`` to its output argument at ``index``."""
        return [f"{out_arg[v.id]}[{', '.join(index)}] = {self.names[v.id]}" for v in values]

    def row_point(self, r: "Reduction", leaves, index: list) -> list:
        """The row epilogue at one point. It reads the kernel's results (through broadcasts) and
        stored prologue values from the kernel's own output buffers, still in cache; shared
        inlined values are recomputed."""
        read = {i.id for v in r.row for i in v.inputs}
        row_leaves = [leaf for leaf in leaves if leaf.id in read]
        hoisted, point = self.loads(row_leaves, index, prefix="r", produced=r.out_arg)
        reloads = []
        for v in r.stored:
            if v.id in read:
                reloads.append(f"{self.local(v)} = {r.out_arg[v.id]}[{', '.join(index)}]")
        return hoisted + point + reloads + self.assign(r.row, index) + self.store(r.row_roots, r.out_arg, index)

    def arguments(self, n_outputs: int, extras=()) -> tuple[list, tuple]:
        """The kernel's argument names (outputs ``o<k>``, bases ``a<k>``, then ``extras``'
        names, then ``err`` when it records faults) and the extras the runtime passes."""
        names = [f"o{k}" for k in range(n_outputs)] + [f"a{k}" for k in range(len(self.bases))]
        extras = tuple(extras) + ((ERR,) if self.faults else ())
        return names + [e[0] for e in extras], extras


# ---------------------------------------------------------------- reductions

_INIT = {"sum": "0", "max": "-np.inf", "min": "np.inf"}


def acc_init(root) -> str:
    x = root.inputs[0]
    if root.op == "sum":
        return "np.float64(0)" if dt.is_float(x.dtype) else "np.int64(0)"
    if dt.is_float(x.dtype):
        return f"{CTOR[x.dtype]}({_INIT[root.op]})"
    info = np.iinfo(x.dtype)
    return f"{CTOR[x.dtype]}({info.min if root.op == 'max' else info.max})"


def acc_dtype(root) -> str:
    x = root.inputs[0]
    if root.op == "sum":
        return "float64" if dt.is_float(x.dtype) else "int64"
    return x.dtype


class Reduction:
    """A reduction group taken apart for codegen: its domain and axes, the index expressions
    of its input, result and outputs (``zero`` spells index 0), and the values of each phase
    with the output argument each is stored to."""

    def __init__(self, group, leaves, zero: str = "0"):
        root = self.root = group.reduction
        x = self.x = root.inputs[0]
        domain = self.domain = x.shape or (1,)
        axes = self.axes = tuple(root.attrs["axes"]) if x.shape else (0,)
        self.kept = [a for a in range(len(domain)) if a not in axes]
        self.keep_shape = tuple(1 if a in axes else d for a, d in enumerate(domain))
        self.index = [f"i{a}" for a in range(len(domain))]
        self.out_index = ", ".join(zero if a in axes else f"i{a}" for a in range(len(domain)))
        self.result_index = (([f"i{a}" for a in self.kept] or [zero]) if not root.attrs["keepdims"]
                             else self.out_index.split(", "))
        self.row = group.row  # the row epilogue's values, computed in a second pass over each row
        row_ids = {v.id for v in group.row}
        self.row_roots = [v for v in group.roots if v.id in row_ids]
        main = sorted({v.id: v for v in group.inlined + [r for r in group.roots if r.id not in row_ids]}.values(),
                      key=lambda v: v.id)  # the row pass's own values live in group.row
        self.prologue = [v for v in main if v.id not in group.epilogue and v is not root]
        self.epilogue = [v for v in main if v.id in group.epilogue]
        self.stored = [v for v in group.roots if v is not root and v.id not in group.epilogue and v.id not in row_ids]
        self.finals = [v for v in group.roots if v.id in group.epilogue]
        self.outputs = [root] + self.stored + self.finals + self.row_roots
        self.out_arg = {v.id: f"o{k}" for k, v in enumerate(self.outputs)}
        self.pro_leaves = [leaf for leaf in leaves if any(leaf.id in {i.id for i in v.inputs}
                                                          for v in self.prologue + [root])]
        self.epi_leaves = [leaf for leaf in leaves if leaf.id != root.id
                           and any(leaf.id in {i.id for i in v.inputs} for v in self.epilogue)]

    @property
    def out_shapes(self) -> list:
        return ([self.keep_shape] + [self.domain] * len(self.stored) + [v.shape or (1,) for v in self.finals]
                + [self.domain] * len(self.row_roots))

    def prologue_point(self, kernel: Kernel) -> tuple[list, list, str]:
        """(hoisted loads, the prologue's lines at one input point, the name of the reduced
        value there)."""
        hoisted, point = kernel.loads(self.pro_leaves, self.index)
        point += kernel.assign(self.prologue, self.index)
        point += kernel.store(self.stored, self.out_arg, self.index)
        return hoisted, point, kernel.names[self.x.id]

    def epilogue_lines(self, kernel: Kernel) -> list:
        """Loads and computation of the epilogue, once per result element (after the result's
        local, ``kernel.local(root)``, is set)."""
        lines = sum(kernel.loads(self.epi_leaves, self.result_index, prefix="e"), [])
        return lines + kernel.assign(self.epilogue, self.result_index)
