"""Automatic differentiation as graph-to-graph transforms.

``grad``, ``vjp`` and ``jvp`` copy the graph and append the derivative computation to the copy,
built from the same primitives by the rules in ``vjp.py`` and ``jvp.py``. The result is an
ordinary graph: it can be printed, evaluated, compiled, and differentiated again.

Reverse mode walks the values in reverse topological order: each value's cotangent (the sum of
what its users sent it: fan-out adds) times its local derivative goes to its operands. Only
values on a path from ``wrt`` to the differentiated outputs take part. Gradients flow only
through float values; ops the op table marks non-differentiable pass none.
"""

from ...errors import DTypeError, GraphError, ShapeError
from ...ir import dtypes as dt
from ...ir.graph import Value
from ...ir.ops import OPS, SOURCES
from ..simplify import simplify as _simplify
from .accumulate import total
from .jvp import JVP
from .vjp import VJP, zeros_like


def _on_path(graph, wrt, targets) -> set:
    """Values that depend on ``wrt`` and that ``targets`` depend on."""
    after = set(wrt)
    for v in graph.nodes:
        if any(i in after for i in v.inputs):
            after.add(v)
    before = set(targets)
    for v in reversed(graph.nodes):
        if v in before:
            before.update(v.inputs)
    return after & before


def backprop(graph, seeds: dict, wrt: list) -> list:
    """Cotangents of ``wrt`` given ``seeds`` (value -> cotangent), appended to ``graph``."""
    path = _on_path(graph, wrt, seeds)
    sent = {v: [c] for v, c in seeds.items()}  # value -> what its users sent it so far
    for v in reversed(list(graph.nodes)):
        if v not in sent or v not in path or v.op in SOURCES or not OPS[v.op].differentiable:
            continue
        cotangent = total(sent.pop(v))  # every user of v comes after it: the list is complete
        for i, x in enumerate(v.inputs):
            if x in path and dt.is_float(x.dtype):
                sent.setdefault(x, []).append(VJP[v.op](v, cotangent, i))
    return [total(sent[w]) if w in sent else zeros_like(w) for w in wrt]


def push_forward(graph, tangents: dict) -> dict:
    """Tangents of every value given ``tangents`` (value -> tangent), appended to ``graph``."""
    tan = dict(tangents)
    for v in list(graph.nodes):
        if v.op in SOURCES or not OPS[v.op].differentiable or not dt.is_float(v.dtype):
            continue
        ts = [tan.get(x) if dt.is_float(x.dtype) else None for x in v.inputs]
        if any(t is not None for t in ts):
            tan[v] = JVP[v.op](v, ts)
    return tan


def wrt_names(graph, wrt) -> list[str]:
    """The names to differentiate with respect to: ``wrt`` (a name or names), by default the
    graph's params; each must be a float input or param (else a named error)."""
    names = list(graph.params) if wrt is None else [wrt] if isinstance(wrt, str) else list(wrt)
    for name in names:
        if name not in graph.arguments:
            raise GraphError(f"wrt: graph {graph.name!r} has no input or param named {name!r} "
                             f"(it has {', '.join(graph.arguments) or 'none'})")
        v = graph.arguments[name]
        if not dt.is_float(v.dtype):
            raise DTypeError(f"wrt: {v.op} {name!r} is {v.dtype}; only float values have gradients")
    if len(set(names)) != len(names):
        raise GraphError(f"wrt: repeated names in {names}")
    return names


def _finish(graph, simplify: bool):
    """The derivative graph, simplified, or only pruned of the zero pads that joined into one
    concat (``accumulate.py``)."""
    return _simplify(graph) if simplify else graph.pruned()


def _add_outputs(graph, values: dict) -> None:
    for name, v in values.items():
        if name in graph.outputs:
            raise GraphError(f"graph {graph.name!r} already has an output named {name!r}; "
                             f"choose another with names={{...}}")
        graph.output(name, v)


def _new_input(graph, name, like):
    if name in graph.arguments:
        raise GraphError(f"graph {graph.name!r} already has an argument named {name!r}")
    return graph.input(name, like.shape, like.dtype)


def _output_name(graph, v) -> str:
    """The name under which ``v`` is an output of ``graph``; grad differentiates outputs only."""
    graph.own(v, "grad: of=")
    names = [n for n, o in graph.outputs.items() if o is v]
    if not names:
        raise GraphError(f"grad: of= takes an output name, and %{v.id} ({v.op}) is not an output of graph "
                         f"{graph.name!r} (its outputs: {', '.join(graph.outputs) or 'none'}); "
                         f"name it first: graph.output(name, value)")
    return names[0]


def grad(graph, of=None, wrt=None, names=None, simplify=True):
    """A new graph with ``graph``'s outputs plus ``grad_<name>`` for each name in ``wrt``.

    ``of`` names a scalar float output (default: the only output), or is that output's Value;
    ``wrt`` names inputs or params (default: all params); ``names={"x": "dx"}`` renames
    gradient outputs.
    """
    if of is None:
        if len(graph.outputs) != 1:
            raise GraphError(f"grad: graph {graph.name!r} has outputs {list(graph.outputs)}; say which with of=")
        of = next(iter(graph.outputs))
    if isinstance(of, Value):
        of = _output_name(graph, of)
    if not isinstance(of, str):
        raise GraphError(f"grad: of= takes an output name (one of {list(graph.outputs)}), got {type(of).__name__}")
    if of not in graph.outputs:
        raise GraphError(f"grad: graph {graph.name!r} has no output named {of!r} (it has {list(graph.outputs)})")
    out = graph.outputs[of]
    if out.shape != ():
        raise ShapeError(f"grad: output {of!r} has shape {out.shape}; grad needs a scalar (use vjp otherwise)")
    if not dt.is_float(out.dtype):
        raise DTypeError(f"grad: output {of!r} is {out.dtype}; grad needs a float output")
    wrt = wrt_names(graph, wrt)
    names = dict(names or {})
    unknown = set(names) - set(wrt)
    if unknown:
        raise GraphError(f"grad: names= renames {sorted(unknown)}, which are not in wrt {wrt}")
    new = graph.copy(f"{graph.name}_grad")
    args = new.arguments
    seed = new.const(1, out.dtype)
    grads = backprop(new, {new.outputs[of]: seed}, [args[w] for w in wrt])
    _add_outputs(new, {names.get(w, f"grad_{w}"): g for w, g in zip(wrt, grads)})
    return _finish(new, simplify)


def vjp(graph, wrt=None, simplify=True):
    """Reverse mode: a new graph with inputs ``cotangent_<output>`` (one per float output) and
    outputs ``grad_<wrt>`` = the sum over outputs of cotangent-weighted gradients."""
    wrt = wrt_names(graph, wrt)
    new = graph.copy(f"{graph.name}_vjp")
    args = new.arguments
    seeds = {}
    for name, v in list(new.outputs.items()):
        if dt.is_float(v.dtype):
            c = _new_input(new, f"cotangent_{name}", v)
            seeds[v] = c if v not in seeds else seeds[v] + c
    grads = backprop(new, seeds, [args[w] for w in wrt])
    _add_outputs(new, {f"grad_{w}": g for w, g in zip(wrt, grads)})
    return _finish(new, simplify)


def jvp(graph, wrt=None, simplify=True):
    """Forward mode: a new graph with inputs ``tangent_<wrt>`` and outputs ``tangent_<output>``
    (one per float output) = the directional derivative along the given tangents."""
    wrt = wrt_names(graph, wrt)
    new = graph.copy(f"{graph.name}_jvp")
    args = new.arguments
    tan = push_forward(new, {args[w]: _new_input(new, f"tangent_{w}", args[w]) for w in wrt})
    _add_outputs(new, {f"tangent_{name}": zeros_like(v) if tan.get(v) is None else tan[v]
                       for name, v in list(new.outputs.items()) if dt.is_float(v.dtype)})
    return _finish(new, simplify)
