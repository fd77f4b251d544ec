"""Which inner loops of a compiled CPU kernel LLVM vectorized, read off its optimized IR.

A fused loop runs at memory speed only when LLVM turns its body into vector instructions; a
scalar library call (``compile report``: "scalar library calls"), a loop-carried dependence or
a check numba could not drop keeps it scalar, and the kernel is several times slower. numba
keeps no IR for kernels loaded from its cache, so ``kernel_loops`` compiles the kernel once
more, uncached, for the signatures it was compiled for, and reads that IR: loops are the
natural loops of the back edges a depth-first walk of each function's blocks finds, in every
function the kernel is made of (the kernel, the
bodies numba's ``prange`` outlines, ``_sum_block``); an innermost loop is vectorized when its
blocks compute on vector types. The scalar remainder loops LLVM adds after a vectorized loop
(marked ``llvm.loop.isvectorized`` without vector code) are not counted, and a scalar loop
that a runtime check runs instead of vector code (``br i1 %check, label %loop.preheader,
label %vector.body``: LLVM could not prove two arrays apart) counts as that vector code, which
LLVM may have unrolled completely (a 256-element row: no loop left of it).
"""

import re
import warnings
from dataclasses import dataclass

_DEFINE = re.compile(r"^define [^@]*@(\"[^\"]+\"|[\w.$]+)\(")
_LABEL = re.compile(r"^([\w.$-]+):")
_BRANCH = re.compile(r"^\s*br (.*)$")
_TARGET = re.compile(r"label %([\w.$-]+)")
_LOOP_MD = re.compile(r"!llvm\.loop !(\d+)")
_VECTOR = re.compile(r"<(\d+) x (float|double|i\d+)>")
_WRAPPERS = ("cpython.", "cfunc.", "NRT_", "_ZN7cpython")


@dataclass(frozen=True)
class Loop:
    """One innermost loop of a kernel: the function it is in, and whether LLVM vectorized it
    (``width``: the widest vector it computes on, as ``8 x float``)."""

    function: str
    vectorized: bool
    width: str | None


def _role(name: str) -> str:
    if "parfor_gufunc" in name:
        return "parallel loop body"
    return "_sum_block" if "_sum_block" in name else "kernel"


def _functions(ir: str):
    """(name, body lines) of each function the kernel is made of (not numba's wrappers)."""
    name, body = None, []
    for line in ir.splitlines():
        m = _DEFINE.match(line)
        if m:
            name, body = m.group(1).strip('"'), []
        elif line.startswith("}") and name is not None:
            if not name.startswith(_WRAPPERS):
                yield name, body
            name = None
        elif name is not None:
            body.append(line)


def _isvectorized_ids(ir: str) -> set:
    """Loop metadata ids that LLVM marked vectorized (the vector body and its remainder)."""
    marks = {m.group(1) for m in re.finditer(r"^!(\d+) = !\{!\"llvm\.loop\.isvectorized\"", ir, re.M)}
    return {m.group(1) for m in re.finditer(r"^!(\d+) = distinct !\{(.*)\}$", ir, re.M)
            if any(f"!{k}" in m.group(2).split(", ") for k in marks)}


def loops_in_ir(ir: str) -> list[Loop]:
    """The innermost loops of every function in the LLVM IR ``ir`` of one kernel."""
    vectorized_ids = _isvectorized_ids(ir)
    found = []
    for name, body in _functions(ir):
        blocks, labels = [[]], {}
        for line in body:
            m = _LABEL.match(line)
            if m:
                labels[m.group(1)] = len(blocks)
                blocks.append([])
            blocks[-1].append(line)
        succs, loop_md = [[] for _ in blocks], {}
        fallbacks = {}  # loop header label -> the vector code a check runs instead of that loop
        for k, block in enumerate(blocks):
            for line in block:
                m = _BRANCH.match(line)
                if not m:
                    continue
                targets = [t for t in _TARGET.findall(m.group(1)) if t in labels]
                succs[k] += [labels[t] for t in targets]
                md = _LOOP_MD.search(line)
                if md:
                    loop_md[k] = md.group(1)
                vector = [t for t in targets if t.startswith("vector.")]
                for t in targets:
                    if vector and not t.startswith("vector."):
                        fallbacks[t.removesuffix(".preheader")] = _lanes(blocks[labels[vector[0]]])
        loops = _natural_loops(succs, 0 if blocks[0] else 1)
        label_of = {k: label for label, k in labels.items()}
        for header, members in loops.items():
            if any(h != header and h in members for h in loops):
                continue  # an outer loop
            lanes = [m for k in members for m in _lanes(blocks[k])]
            label = label_of.get(header)
            if not lanes and label in fallbacks:
                # a scalar loop a runtime check (aliasing, strides) runs instead of vector code:
                # that vector loop is counted itself, or, unrolled completely, stands for this one
                if not fallbacks[label]:
                    continue
                lanes = fallbacks[label]
            elif not lanes and any(loop_md.get(k) in vectorized_ids for k in members):
                continue  # the scalar remainder of a vectorized loop
            widest = max(lanes, key=lambda m: int(m[0]), default=None)
            found.append(Loop(_role(name), bool(lanes), f"{widest[0]} x {widest[1]}" if widest else None))
    return found


def _natural_loops(succs: list, entry: int) -> dict:
    """{header block: the blocks of its loop} from the back edges a depth-first walk finds."""
    preds = [[] for _ in succs]
    for u, vs in enumerate(succs):
        for v in vs:
            preds[v].append(u)
    on_stack, seen, back = set(), set(), []
    stack = [(entry, iter(succs[entry]))]
    seen.add(entry)
    on_stack.add(entry)
    while stack:
        u, it = stack[-1]
        v = next(it, None)
        if v is None:
            stack.pop()
            on_stack.discard(u)
        elif v in on_stack:
            back.append((u, v))
        elif v not in seen:
            seen.add(v)
            on_stack.add(v)
            stack.append((v, iter(succs[v])))
    loops = {}
    for latch, header in back:
        members, todo = {header, latch}, ([latch] if latch != header else [])  # the walk stops at the header
        while todo:
            for p in preds[todo.pop()]:
                if p not in members:
                    members.add(p)
                    todo.append(p)
        loops.setdefault(header, set()).update(members)
    return loops


def _lanes(block) -> list:
    """(lanes, element type) of every vector value an instruction of ``block`` computes on."""
    return [m for line in block for m in _VECTOR.findall(line)]


def kernel_loops(dispatcher) -> list[Loop]:
    """The innermost loops of a compiled kernel ``dispatcher`` (see the module docstring)."""
    import numba

    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache", "nopython")}
    fresh = numba.njit(**options)(dispatcher.py_func)
    found = []
    for signature in dispatcher.signatures:
        fresh.compile(signature)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba's note on cached code: this compile is not cached
            found += loops_in_ir(fresh.inspect_llvm(signature))
    return found


def describe(loops: list[Loop]) -> str:
    """``2 of 3 inner loops vectorized (8 x float); scalar: the kernel's``."""
    done = [lp for lp in loops if lp.vectorized]
    widths = sorted({lp.width for lp in done})
    text = f"{len(done)} of {len(loops)} inner loops vectorized" + (f" ({', '.join(widths)})" if widths else "")
    scalar = sorted({lp.function for lp in loops if not lp.vectorized})
    return text + (f"; scalar: in the {', '.join(scalar)}" if scalar else "")
