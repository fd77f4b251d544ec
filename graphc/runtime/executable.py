"""The executable: runs a compiled plan on numpy arrays.

A plan is a list of steps made once at compile time, each a small closure over a shared list
of arrays indexed by value id: a numpy view, a library call (BLAS matmul), or a fused Numba
kernel. Intermediate buffers are fixed views into one arena allocated on first call; outputs
are fresh arrays each call (or the caller's, with ``run(..., out=)``), so they never alias
each other, the inputs or the arena. Inputs are checked like the interpreter checks them and
are only ever read.
"""

import time
import tracemalloc

import numpy as np

from ..codegen.cache import load_kernel, seal
from ..errors import ArgumentError, DTypeError, ShapeError
from ..ir.dot import to_dot
from ..ir.interpret import bind_arguments
from ..ir.ops import OPS

def _python_slices(attrs) -> tuple:
    """A ``slice`` op's attributes as Python slices (a negative stop means "through index 0")."""
    return tuple(slice(b, e if e >= 0 else None, s) if len(range(b, e, s)) else slice(0, 0)
                 for b, e, s in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


# op -> (how to prepare its attributes once, how to make the view each call)
_VIEW = {
    "stop_gradient": (None, lambda a, x: x),
    "checkpoint": (None, lambda a, x: x),
    "broadcast_to": (None, lambda a, x: np.broadcast_to(x, a["shape"])),
    "transpose": (None, lambda a, x: np.transpose(x, a["perm"])),
    "reshape": (None, lambda a, x: np.reshape(x, a["shape"])),
    "slice": (_python_slices, lambda a, x: x[a]),
}


class Executable:
    """``fn(**arrays) -> {output name: ndarray}``; see ``report()`` and ``stats`` for the plan."""

    def __init__(self, graph, steps, kernels, memory, stats, report_text, residuals=()):
        self.graph = graph
        self.steps = steps  # the scheduled groups
        self.kernels = kernels  # group name -> KernelSource
        self.memory = memory
        self.stats = stats
        self._report = report_text
        self.residuals = list(residuals)  # what the backward keeps from the forward, or recomputes
        self._arena = None
        self._slots = {}  # value id -> its view of the arena, made with the arena
        self._shaped = {}  # (value id, shape) -> that view as a kernel takes it, made with the arena
        self._consts = {v.id: v.attrs["value"] for v in graph.nodes if v.op == "const"}
        self._kernel_args = []  # (value id, shape) of every arena argument of a loop kernel
        self._runners = [self._runner(g) for g in steps]
        self._outputs = list(graph.outputs.items())
        self._arguments = graph.arguments
        self._out_by_value = {}  # value id -> caller buffer, during a call with out=

    def release(self) -> None:
        """Free the arena now; the next call allocates it again."""
        self._arena, self._slots, self._shaped = None, {}, {}

    def report(self) -> str:
        return self._report

    def to_dot(self) -> str:
        """Graphviz DOT of the compiled IR with each fused kernel drawn as a cluster."""
        return to_dot(self.graph, self.steps)

    # ------------------------------------------------------------ building the step closures

    def _buffer(self, v):
        """The array step ``v`` writes: the caller's ``out`` buffer, a fresh output or its arena slot."""
        if v.id in self.memory.fresh:
            given = self._out_by_value.get(v.id)
            return np.empty(v.shape, dtype=v.dtype) if given is None else given
        return self._slots[v.id]

    def _runner(self, group):
        if group.kind == "view":
            (v,) = group.roots
            prepare, view = _VIEW[v.op]
            src, attrs = v.inputs[0].id, (prepare(v.attrs) if prepare else v.attrs)

            def run_view(env):
                env[v.id] = view(attrs, env[src])
            return run_view
        if group.kind == "library":
            (v,) = group.roots
            ins = [i.id for i in v.inputs]
            if v.op == "matmul":
                def run_matmul(env):
                    out = env[v.id] = self._buffer(v)
                    np.matmul(env[ins[0]], env[ins[1]], out=out)
                return run_matmul
            reference, attrs = OPS[v.op].reference, v.attrs

            def run_library(env):
                out = env[v.id] = self._buffer(v)
                out[...] = reference(attrs, *(env[i] for i in ins))
            return run_library
        ks = self.kernels[group.name]
        fn = load_kernel(ks.source)
        outs, ins = self._kernel_plan(ks)
        unsealed = True

        def run_kernel(env):
            nonlocal unsealed
            fn(*self._kernel_arguments(env, outs, ins))
            if unsealed:  # numba has now written (or loaded) its cache files for this kernel
                unsealed = False
                seal(ks.source)
        return run_kernel

    def _kernel_plan(self, ks) -> tuple[list, list]:
        """How each argument of a kernel is found: an arena slot (shaped once, with the arena)
        or a value read per call."""
        fresh = self.memory.fresh
        outs = [(v.id, shape, v.id in fresh) for v, shape in zip(ks.outputs, ks.out_shapes)]
        ins = [(b.id, shape, b.id in self.memory.offsets) for b, shape in zip(ks.inputs, ks.in_shapes)]
        self._kernel_args += [(i, shape) for i, shape, in_arena in ins if in_arena]
        self._kernel_args += [(i, shape) for i, shape, is_fresh in outs if not is_fresh]
        return outs, ins

    def _kernel_arguments(self, env, outs, ins) -> list:
        fixed = self._shaped
        args = []
        for i, shape, is_fresh in outs:
            if is_fresh:
                buf = env[i] = self._buffer(self.graph.nodes[i])
                args.append(buf.reshape(shape))
            else:
                env[i] = self._slots[i]
                args.append(fixed[i, shape])
        for i, shape, in_arena in ins:
            a = fixed[i, shape] if in_arena else env[i]
            args.append(a if a.shape == shape else a.reshape(shape))
        return args

    # ------------------------------------------------------------ running

    def _env(self, arrays):
        if self._arena is None:
            self.release()  # drop every view of the old arena first, so it is freed now
            self._arena = np.empty(max(self.memory.arena_bytes, 1), dtype=np.uint8)
            for vid, offset in self.memory.offsets.items():
                v = self.graph.nodes[vid]
                self._slots[vid] = self._arena[offset:offset + v.type.nbytes].view(v.dtype).reshape(v.shape)
            self._shaped = {(vid, shape): self._slots[vid] if self._slots[vid].shape == shape
                            else self._slots[vid].reshape(shape) for vid, shape in self._kernel_args}
        env = [None] * len(self.graph.nodes)
        for v, a in bind_arguments(self.graph, arrays).items():
            env[v.id] = a
        for vid, a in self._consts.items():
            env[vid] = a
        return env

    def _results(self, env, out):
        results, given = {}, set()
        for name, v in self._outputs:
            a = env[v.id]
            if name in out:
                if a is not out[name]:
                    out[name][...] = a
                results[name] = out[name]
            elif v.id in self.memory.fresh and v.id not in given and not any(a is b for b in out.values()):
                given.add(v.id)
                results[name] = a
            else:
                results[name] = np.array(a, copy=True, order="C")
        return results

    def _check_out(self, out: dict, env) -> dict:
        """Caller output buffers: known names, exact shape and dtype, C-contiguous, writeable,
        overlapping neither an input nor each other."""
        outputs = dict(self._outputs)
        unknown = [n for n in out if n not in outputs]
        if unknown:
            raise ArgumentError(f"out: {', '.join(unknown)} not outputs of graph {self.graph.name!r} "
                                f"(it has {', '.join(outputs)})")
        for name, a in out.items():
            v = outputs[name]
            if not isinstance(a, np.ndarray):
                raise ArgumentError(f"out {name!r}: expected a numpy array, got {type(a).__name__}")
            if a.dtype != np.dtype(v.dtype):
                raise DTypeError(f"out {name!r}: expected dtype {v.dtype}, got {a.dtype}")
            if a.shape != v.shape:
                raise ShapeError(f"out {name!r}: expected shape {v.shape}, got {a.shape}")
            if not (a.flags.c_contiguous and a.flags.writeable):
                raise ArgumentError(f"out {name!r}: must be C-contiguous and writeable")
            others = [(f"input {n!r}", env[x.id]) for n, x in self.graph.arguments.items()]
            others += [(f"out {m!r}", b) for m, b in out.items() if m != name]
            for what, b in others:
                if np.may_share_memory(a, b):
                    raise ArgumentError(f"out {name!r}: shares memory with {what}")
        return {outputs[n].id: a for n, a in reversed(list(out.items()))}

    def run(self, arrays: dict, out: dict | None = None) -> dict:
        """Like ``fn(**arrays)``; ``out={name: array}`` writes those outputs into the caller's
        arrays (no allocation, no page faults for big outputs) and returns them."""
        env = self._env(arrays)
        out = dict(out or {})
        self._out_by_value = self._check_out(out, env) if out else {}
        try:
            with np.errstate(all="ignore"):  # IEEE results from BLAS and numpy, as the interpreter gives
                for run in self._runners:
                    run(env)
            return self._results(env, out)
        finally:
            self._out_by_value = {}

    def __call__(self, **arrays):
        return self.run(arrays)

    def profile(self, **arrays) -> dict:
        """One call, measured: ``time_s`` and each step's time, and ``peak_bytes``, the high-water
        mark of allocations during the call (``tracemalloc``, which numpy reports to), with the
        arena allocated afresh inside the call, next to ``planned_peak_bytes``."""
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        try:
            self.release()  # the arena is allocated again, inside the measurement
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            env = self._env(arrays)
            times = [0.0] * len(self._runners)  # made before the measured run: only its arrays count
            start = time.perf_counter()
            with np.errstate(all="ignore"):
                for k, run in enumerate(self._runners):
                    t = time.perf_counter()
                    run(env)
                    times[k] = time.perf_counter() - t
            total = time.perf_counter() - start
            self._results(env, {})
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            if not tracing:
                tracemalloc.stop()
        rows = [{"step": group.name, "kind": group.kind, "time_s": t, "ops": [v.op for v in group.values]}
                for group, t in zip(self.steps, times)]
        return {"time_s": total, "peak_bytes": peak, "planned_peak_bytes": self.memory.peak_bytes,
                "kernels": rows}
