"""Simplification: dead-code elimination, common-subexpression elimination, constant folding
and algebraic identities, run on every derived graph so a gradient reads like the hand-written
backward pass.

The pass replays the graph into a new one through ``_Rewriter.emit``, which tries the rewrite
rules on each node (whose operands are already simplified), then reuses an identical earlier
node (CSE), and only then adds a node. Dead values are dropped afterwards, and the whole is
repeated until nothing changes.

Known constants are tracked as *splats*: a const whose elements are all equal, seen through
layout ops (``broadcast_to(const 0)`` is a splat of 0). Elementwise ops on splats fold to a
splat; ``x * 0`` becomes zeros (assuming ``x`` finite, as gradient code does; IEEE would give NaN
for an infinite ``x``). Inputs and params are always kept: they are the graph's signature.

Folding is bounded, so that a small file cannot make compilation slow or huge: a splat folds
to a splat (a scalar and a broadcast, whatever the size), and an op on dense constants runs its
reference only when its result has at most ``FOLD_LIMIT`` elements and every operand is a
constant the graph already holds (or a splat of at most ``FOLD_LIMIT`` elements). The op
table's references allocate no more than their operands and result (``one_hot`` on no labels
allocates nothing, whatever its depth), so folding costs at most what the graph's own
constants do. A fold that fails (an index out of range, an integer to a negative power) is
left for run time, where it is a DataError.
"""

import numpy as np

from ..errors import GraphcError
from ..ir.graph import Graph
from ..ir.ops import ARGUMENTS, OPS, VIEWS, base_of, check_attrs

FOLD_LIMIT = 1024  # fold an all-constant op only when its result is at most this many elements


def splat(v):
    """The value every element of ``v`` equals, when ``v`` is a known constant (however
    viewed: a view keeps a splat a splat); else None."""
    v = base_of(v)
    if v.op != "const" or v.size == 0:
        return None
    a = v.attrs["value"]
    first = a.flat[0]
    return first if np.all(a == first) else None


def _is(v, c) -> bool:
    s = splat(v)
    return s is not None and s == c


class _Rewriter:
    def __init__(self, name: str):
        self.graph = Graph(name)
        self.seen = {}

    def emit(self, op, inputs, attrs=None):
        attrs = check_attrs(OPS[op], attrs or {})
        if op not in ARGUMENTS:
            out = OPS[op].infer(tuple(i.type for i in inputs), attrs)
            for rule in _RULES.get(op, ()) + (_fold,):
                r = rule(self, op, inputs, attrs, out)
                if r is not None:
                    return r
            key = (op, tuple(i.id for i in inputs), _attrs_key(attrs))
            if key in self.seen:
                return self.seen[key]
        v = self.graph.add_node(op, inputs, attrs)
        if op not in ARGUMENTS:
            self.seen[key] = v
        return v

    def splat(self, c, type_):
        const = self.emit("const", (), {"value": np.array(c, dtype=type_.dtype)})
        return self.emit("broadcast_to", [const], {"shape": type_.shape})


def _attrs_key(attrs):
    return tuple((k, (a.dtype.str, a.shape, a.tobytes()) if isinstance(a, np.ndarray) else a)
                 for k, a in attrs.items())


# ---------------------------------------------------------------- folding


def _fold(rw, op, inputs, attrs, out):
    """Fold ops on constants: splats of any size, small dense constants in full."""
    if not inputs or (op == "broadcast_to" and inputs[0].op == "const"):
        return None  # a source, or already a broadcast constant
    scalars = [splat(i) for i in inputs]
    try:
        with np.errstate(all="ignore"):
            # a splat is a scalar const and a broadcast: two nodes, so small dense constants
            # fold densely below instead (one node for one: simplify never adds nodes)
            small_dense = out.size <= FOLD_LIMIT and all(i.op == "const" for i in inputs)
            if out.size and all(s is not None for s in scalars) and not small_dense:
                same = all(s == scalars[0] for s in scalars)
                if OPS[op].kind == "elementwise":
                    return rw.splat(OPS[op].reference(attrs, *map(np.array, scalars))[()], out)
                if op in VIEWS or op in ("max", "min", "take_along_axis", "take") or (op == "concat" and same):
                    return rw.splat(scalars[0], out)
                if op == "sum":
                    n = inputs[0].size // out.size
                    return rw.splat(np.float64(scalars[0]) * n if inputs[0].dtype.startswith("float")
                                    else scalars[0] * n, out)
            dense = [_dense(i) for i in inputs]
            if out.size <= FOLD_LIMIT and op != "broadcast_to" and all(d is not None for d in dense):
                value = OPS[op].reference(attrs, *dense)
                return rw.emit("const", (), {"value": np.asarray(value, dtype=out.dtype)})
    except (GraphcError, ValueError, ArithmeticError, IndexError, MemoryError):
        return None  # e.g. an out-of-range constant index: leave it to fail at run time
    return None


def _dense(v):
    """The array of a constant or small splat operand, else None."""
    if v.op == "const":
        return v.attrs["value"]
    s = splat(v) if v.size <= FOLD_LIMIT else None
    return None if s is None else np.broadcast_to(np.array(s, dtype=v.dtype), v.shape)


# ---------------------------------------------------------------- identities


def _add(rw, op, ins, attrs, out):
    a, b = ins
    if _is(b, 0):
        return a
    if _is(a, 0):
        return b if op == "add" else rw.emit("neg", [b])
    return None


def _mul(rw, op, ins, attrs, out):
    for x, y in (ins, ins[::-1]):
        if _is(y, 1):
            return x
        if _is(y, 0):
            return rw.splat(0, out)
        if _is(y, -1):
            return rw.emit("neg", [x])
    return None


def _div(rw, op, ins, attrs, out):
    return ins[0] if _is(ins[1], 1) else None


def _pow(rw, op, ins, attrs, out):
    if _is(ins[1], 1):
        return ins[0]
    if _is(ins[1], 2):
        return rw.emit("square", [ins[0]])
    return None


def _neg(rw, op, ins, attrs, out):
    return ins[0].inputs[0] if ins[0].op == "neg" else None


def _same_shape(rw, op, ins, attrs, out):
    """Layout ops that change nothing, and chains of the same op."""
    x = ins[0]
    if x.shape == out.shape and op in ("broadcast_to", "reshape"):
        return x
    if x.op == op and op in ("broadcast_to", "reshape"):
        return rw.emit(op, [x.inputs[0]], attrs)
    return None


def _transpose(rw, op, ins, attrs, out):
    x, perm = ins[0], attrs["perm"]
    if list(perm) == sorted(perm):
        return x
    if x.op == "transpose":
        inner = x.attrs["perm"]
        return rw.emit("transpose", [x.inputs[0]], {"perm": [inner[p] for p in perm]})
    return None


def _reduce_unit_axes(rw, op, ins, attrs, out):
    """A reduction over size-1 axes only reduces nothing: it is a reshape."""
    x = ins[0]
    return rw.emit("reshape", [x], {"shape": out.shape}) if all(x.shape[a] == 1 for a in attrs["axes"]) else None


def _where(rw, op, ins, attrs, out):
    cond, a, b = ins
    if a is b:
        return a
    c = splat(cond)
    return None if c is None else (a if c else b)


def _matmul(rw, op, ins, attrs, out):
    return rw.splat(0, out) if _is(ins[0], 0) or _is(ins[1], 0) else None


_RULES = {
    "add": (_add,), "sub": (_add,), "mul": (_mul,), "div": (_div,), "pow": (_pow,), "neg": (_neg,),
    "broadcast_to": (_same_shape,), "reshape": (_same_shape,), "transpose": (_transpose,),
    "sum": (_reduce_unit_axes,), "max": (_reduce_unit_axes,), "min": (_reduce_unit_axes,),
    "where": (_where,), "matmul": (_matmul,),
}


# ---------------------------------------------------------------- the pass


def _replay(graph, keep=None) -> Graph:
    rw = _Rewriter(graph.name)
    new = {}
    for v in graph.nodes:
        if keep is None or v.id in keep:
            new[v.id] = rw.emit(v.op, [new[i.id] for i in v.inputs], dict(v.attrs))
    for name, v in graph.outputs.items():
        rw.graph.output(name, new[v.id])
    return rw.graph


def dce(graph) -> Graph:
    """Drop values no output needs (inputs and params stay)."""
    return _replay(graph, graph.live_ids())


def simplify(graph, max_rounds: int = 8) -> Graph:
    """Rewrite, fold, deduplicate and prune until the graph stops changing."""
    for _ in range(max_rounds):
        new = dce(_replay(graph))
        if len(new.nodes) == len(graph.nodes) and [v.op for v in new.nodes] == [v.op for v in graph.nodes]:
            return new
        graph = new
    return graph
