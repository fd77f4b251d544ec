"""The IR: a ``Graph`` of SSA ``Value``s.

Every value is produced by exactly one node and every node produces one value, so the two are
one object: a ``Value`` records its op, operand values, attributes, shape and dtype. Inputs,
params and constants are values too (source ops), which keeps every analysis uniform. A graph
keeps its values in a topological order (each after its operands) and maps output names to
values. Graphs only grow: passes build new graphs rather than editing old ones, so a value's
``id`` is its position, and the text form prints it as ``%id``.
"""

import numpy as np

from ..errors import GraphError
from . import dtypes as dt
from .names import check_name
from .ops import ARGUMENTS, OPS, TensorType, check_attrs
from .printing import format_value, to_text
from .shapes import check_type


class Value:
    """A symbolic array in a graph. Operators build new nodes: ``x @ w + b``, ``-x``, ``x[0, 1:]``
    (the builder, ``build.py``, which needs this class first, gives it them)."""

    __slots__ = ("graph", "id", "op", "inputs", "attrs", "shape", "dtype")
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array + value works
    __hash__ = object.__hash__  # == builds an `eq` node, so identity keeps dicts and sets working

    def __init__(self, graph, id, op, inputs, attrs, shape, dtype):
        self.graph, self.id, self.op, self.inputs, self.attrs = graph, id, op, inputs, attrs
        self.shape, self.dtype = shape, dtype

    @property
    def type(self) -> TensorType:
        return TensorType(self.shape, self.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return self.type.size

    @property
    def name(self) -> str | None:
        """The name of an input or param, else None."""
        return self.attrs.get("name") if self.op in ARGUMENTS else None

    def __repr__(self):
        return f"<Value {format_value(self)} in graph {self.graph.name}>"

    def __bool__(self):
        raise GraphError(f"%{self.id} is symbolic and has no truth value; use gc.where for a choice by data")

    def __len__(self):
        if not self.shape:
            raise GraphError(f"%{self.id} is a scalar and has no length")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class Graph:
    """A static graph: named inputs and params, constants, ops, and named outputs.

    ``g.inputs``, ``g.params`` and ``g.outputs`` map names to values. A graph can always be
    extended: more inputs, more nodes, more outputs.
    """

    def __init__(self, name: str = "graph"):
        self.name = check_name(name, "graph name")
        self.nodes: list[Value] = []
        self.outputs: dict[str, Value] = {}
        self._sources: dict[str, Value] = {}  # inputs and params share one namespace (keyword args)

    @property
    def inputs(self) -> dict[str, Value]:
        return {n: v for n, v in self._sources.items() if v.op == "input"}

    @property
    def params(self) -> dict[str, Value]:
        return {n: v for n, v in self._sources.items() if v.op == "param"}

    @property
    def arguments(self) -> dict[str, Value]:
        """Inputs and params together, in order of definition: what a call must supply."""
        return dict(self._sources)

    def input(self, name: str, shape, dtype="float32") -> Value:
        """Declare a data input."""
        return self._source("input", name, shape, dtype)

    def param(self, name: str, shape, dtype="float32") -> Value:
        """Declare a parameter; ``grad`` differentiates by params unless told otherwise."""
        return self._source("param", name, shape, dtype)

    def _source(self, op, name, shape, dtype) -> Value:
        check_name(name, op)
        dtype = dt.canonical(dtype)
        shape = check_type(shape, dtype, f"{op} {name!r}")
        return self.add_node(op, (), {"name": name, "shape": shape, "dtype": dtype})

    def const(self, value, dtype=None) -> Value:
        """A constant array. numpy arrays keep their dtype; Python floats (and lists of them)
        become the default float32 unless ``dtype`` says otherwise."""
        try:
            with np.errstate(over="ignore"):  # refused below
                array = np.array(value, dtype=None if dtype is None else dt.canonical(dtype))
                if dtype is None and array.dtype == np.float64 and not isinstance(value, (np.ndarray, np.generic)):
                    array = array.astype(dt.DEFAULT_FLOAT)
        except (TypeError, ValueError, OverflowError) as e:
            raise GraphError(f"cannot make a constant of {value!r}: {e}") from None
        fault = dt.overflow_fault(value, array)
        if fault:
            raise GraphError(f"const: {fault}")
        return self.add_node("const", (), {"value": array})

    def output(self, name: str, value: Value) -> Value:
        """Name ``value`` as an output of the graph."""
        check_name(name, "output")
        if name in self.outputs:
            raise GraphError(f"graph {self.name!r} already has an output named {name!r}")
        self.outputs[name] = self.own(value, f"output {name!r}")
        return value

    def own(self, value, what: str) -> Value:
        """``value`` if it is a value of this graph, else a GraphError naming ``what``."""
        if not isinstance(value, Value):
            raise GraphError(f"{what}: expected a graph Value, got {type(value).__name__}")
        if value.graph is not self:
            raise GraphError(f"{what}: %{value.id} belongs to graph {value.graph.name!r}, not {self.name!r}")
        return value

    def add_node(self, op: str, inputs, attrs: dict) -> Value:
        """Append one node after checking its op, operands and attributes; return its value.

        The shape/dtype rule raises ShapeError or DTypeError naming the op and the shapes.
        """
        opdef = OPS.get(op)
        if opdef is None:
            raise GraphError(f"unknown op {op!r}")
        inputs = tuple(self.own(v, f"operand of {op}") for v in inputs)
        fault = opdef.arity_fault(len(inputs))
        if fault:
            raise GraphError(f"{op}: {fault}")
        attrs = check_attrs(opdef, attrs)
        if op in ARGUMENTS and attrs["name"] in self._sources:
            other = self._sources[attrs["name"]]
            raise GraphError(f"graph {self.name!r} already has an {other.op} named {attrs['name']!r} (%{other.id})")
        t = opdef.infer(tuple(v.type for v in inputs), attrs)
        check_type(t.shape, t.dtype, f"%{len(self.nodes)} ({op})")
        value = Value(self, len(self.nodes), op, inputs, attrs, t.shape, t.dtype)
        self.nodes.append(value)
        if op in ARGUMENTS:
            self._sources[attrs["name"]] = value
        return value

    def copy(self, name: str | None = None) -> "Graph":
        """A copy with the same values at the same ids: ``copy.nodes[v.id]`` is ``v``'s twin."""
        new = Graph(name or self.name)
        for v in self.nodes:
            new.add_node(v.op, [new.nodes[i.id] for i in v.inputs], dict(v.attrs))
        for name_, v in self.outputs.items():
            new.output(name_, new.nodes[v.id])
        return new

    def live_ids(self) -> set:
        """Ids of the values some output needs, and of every input and param."""
        live = {v.id for v in self.outputs.values()} | {v.id for v in self.arguments.values()}
        for v in reversed(self.nodes):
            if v.id in live:
                live.update(i.id for i in v.inputs)
        return live

    def pruned(self, name: str | None = None) -> "Graph":
        """A copy without the values no output needs (inputs and params stay), nothing else
        rewritten; ids are renumbered."""
        new, live, twin = Graph(name or self.name), self.live_ids(), {}
        for v in self.nodes:
            if v.id in live:
                twin[v.id] = new.add_node(v.op, [twin[i.id] for i in v.inputs], dict(v.attrs))
        for name_, v in self.outputs.items():
            new.output(name_, twin[v.id])
        return new

    def select(self, *names: str, name: str | None = None) -> "Graph":
        """A copy whose outputs are only ``names``, in that order (a train step without its
        ``grad_*`` outputs); its inputs and params stay, and what no output needs is dropped
        when it compiles. Graphs only grow, so this is a new graph."""
        unknown = [n for n in names if n not in self.outputs]
        if unknown or not names or len(set(names)) != len(names):
            why = f"it has no output named {unknown[0]!r}" if unknown else (
                "name at least one output" if not names else "an output is named twice")
            raise GraphError(f"select: graph {self.name!r}: {why} (its outputs: {', '.join(self.outputs) or 'none'})")
        new = self.copy(name)
        new.outputs = {n: new.outputs[n] for n in names}
        return new

    def to_networkx(self):
        """A networkx DiGraph: one node per value id with op, shape, dtype (and name, value)."""
        import networkx as nx

        g = nx.DiGraph(name=self.name, outputs={n: v.id for n, v in self.outputs.items()})
        for v in self.nodes:
            g.add_node(v.id, op=v.op, shape=v.shape, dtype=v.dtype, name=v.name, value=v)
            for i in v.inputs:
                g.add_edge(i.id, v.id)
        return g

    def __repr__(self):
        return (f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.params)} params, "
                f"{len(self.nodes)} values, outputs {list(self.outputs)}>")

    def __str__(self):
        return to_text(self)
