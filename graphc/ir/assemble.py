"""Build a graph from parsed node records: the one checked door for text and JSON loading.

Loaders turn their format into ``Record``s and call ``assemble``. It rejects duplicate labels,
dangling operands and cycles, adds nodes in topological order through ``Graph.add_node`` (which
checks ops, attributes and shape rules), and checks each declared type against the inferred one.
Every fault is a GraphError that starts with the record's location (a line, a JSON path).
"""

from typing import NamedTuple

import networkx as nx
import numpy as np

from ..errors import GraphcError, GraphError
from . import dtypes as dt
from .graph import Graph
from .ops import TensorType


class Record(NamedTuple):
    label: int  # the %N the file uses for this value
    op: str
    operands: tuple[int, ...]
    attrs: dict
    type: TensorType  # as declared in the file
    loc: str  # where it came from, for error messages


class OutputRecord(NamedTuple):
    name: str
    label: int
    loc: str


def assemble(name: str, records: list[Record], outputs: list[OutputRecord]) -> Graph:
    by_label = {}
    for r in records:
        if r.label in by_label:
            raise GraphError(f"{r.loc}: %{r.label} is defined twice (first at {by_label[r.label].loc})")
        by_label[r.label] = r
    deps = nx.DiGraph()
    for i, r in enumerate(records):
        deps.add_node(r.label, order=i)
        for o in r.operands:
            if o not in by_label:
                raise GraphError(f"{r.loc}: %{r.label} uses %{o}, which is not defined")
            deps.add_edge(o, r.label)
    if not nx.is_directed_acyclic_graph(deps):
        cycle = [u for u, _ in nx.find_cycle(deps)]
        path = " -> ".join(f"%{u}" for u in cycle + cycle[:1])
        raise GraphError(f"{by_label[cycle[0]].loc}: cycle {path}")
    g = Graph(name)
    values = {}
    for label in nx.lexicographical_topological_sort(deps, key=lambda n: deps.nodes[n]["order"]):
        r = by_label[label]
        try:
            v = g.add_node(r.op, [values[o] for o in r.operands], r.attrs)
        except (GraphcError, OverflowError) as e:
            raise GraphError(f"{r.loc}: %{label} ({r.op}): {e}") from None
        if v.type != r.type:
            raise GraphError(f"{r.loc}: %{label} ({r.op}) is declared {r.type.dtype}{list(r.type.shape)} "
                             f"but its operands give {v.dtype}{list(v.shape)}")
        values[label] = v
    for out in outputs:
        if out.label not in values:
            raise GraphError(f"{out.loc}: output {out.name!r} refers to %{out.label}, which is not defined")
        try:
            g.output(out.name, values[out.label])
        except GraphError as e:
            raise GraphError(f"{out.loc}: {e}") from None
    return g


def const_array(scalars: list, t: TensorType, loc: str) -> np.ndarray:
    """The array of a const from its flat list of scalars, checked against its declared type:
    a number its dtype cannot hold (an int out of range, a finite float that would become
    infinite) is refused, naming the number and the range."""
    if len(scalars) != t.size:
        raise GraphError(f"{loc}: const of shape {t.shape} needs {t.size} values, got {len(scalars)}")
    for s in scalars:
        ok = isinstance(s, bool) if t.dtype == "bool" else (
            isinstance(s, int) and not isinstance(s, bool) if t.dtype in dt.INTS else not isinstance(s, bool))
        if not ok:
            raise GraphError(f"{loc}: const value {s!r} does not fit dtype {t.dtype}")
    info = np.iinfo(t.dtype) if t.dtype in dt.INTS else None
    bad = next((s for s in scalars if not info.min <= s <= info.max), None) if info else None
    if bad is not None:
        raise GraphError(f"{loc}: const value {dt.range_fault(bad, t.dtype)}")
    if dt.is_float(t.dtype):
        scalars = [_float(s, t.dtype, loc) for s in scalars]
    with np.errstate(over="ignore"):  # refused below
        array = np.array(scalars, dtype=t.dtype).reshape(t.shape)
    fault = dt.overflow_fault(scalars, array.ravel())
    if fault:
        raise GraphError(f"{loc}: const value {fault}")
    return array


def _float(s, dtype: str, loc: str) -> float:
    """A scalar of a float const as a Python float (an int may be too big to be one)."""
    try:
        return float(s)
    except OverflowError:
        raise GraphError(f"{loc}: const value {dt.range_fault(s, dtype)}") from None
