"""The executable: runs a compiled plan on numpy arrays.

A plan is a list of steps made once at compile time, each a small closure over a shared list
of arrays indexed by value id: a numpy view, a numpy call (BLAS matmul, concat), or a Numba
kernel. Intermediate buffers are fixed views into one arena allocated on first call; outputs
are fresh arrays each call (or the caller's, with ``run(..., out=)``), so they never alias
each other, the inputs or the arena. Inputs are checked like the interpreter checks them and
are only ever read. Every kernel is compiled for the argument types the steps pass, all at
once, before the first kernel runs (or by ``warm()``; see ``codegen/warm.py``).
"""

import contextlib
import functools
import threading
import time
import tracemalloc

import numpy as np
from numba import typeof

from ..codegen.cache import load_kernel, seal
from ..codegen.loops import describe, kernel_loops
from ..codegen.numba_cpu import NUMPY_CALLS
from ..codegen.warm import compile_kernels
from ..errors import ArgumentError, DTypeError, ResourceError, ShapeError
from ..ir.dot import to_dot
from ..ir.interpret import bind_arguments, by_name_only
from ..ir.ops import ARGUMENTS, windows_view
from ..passes.fusion import StepKind
from .plan import Plan


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
    "windows": (None, windows_view),
}


def one_at_a_time(method):
    """``method`` of an executable, run under its lock: one call's arena, caller buffers and
    first-call compile are the executable's own state, so calls from several threads take
    turns (reentrant: ``profile`` runs steps as a call does) instead of sharing an arena."""
    @functools.wraps(method)
    def call(self, /, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return call


def resource_errors(method):
    """``method`` of an executable, with a failed allocation (numpy's MemoryError: the arena,
    an output, a library call's result) raised as a ResourceError naming the graph and its
    planned peak."""
    @functools.wraps(method)
    def call(self, /, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ResourceError:
            raise
        except MemoryError as e:
            raise ResourceError(f"graph {self.graph.name!r}: out of memory (its plan holds {self.memory.peak_bytes} "
                                f"bytes at a call's peak): {e}") from None
    return call


def _view(v) -> tuple:
    """(attributes prepared once, the function making the view) of view op ``v``."""
    prepare, view = _VIEW[v.op]
    return (prepare(v.attrs) if prepare else v.attrs), view


def _stand_in(shape, dtype, writeable=True) -> np.ndarray:
    """An array numba types as it types a C-contiguous one of this shape, over one element's
    memory: only ever typed, never read or written."""
    dtype = np.dtype(dtype)
    strides = [dtype.itemsize] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    return np.lib.stride_tricks.as_strided(np.empty(1, dtype), shape, strides, writeable=writeable)


def _reshaped(a: np.ndarray, shape) -> np.ndarray:
    """``a.reshape(shape)`` as numpy makes it, without reading ``a`` (a stand-in owns no data):
    the view numpy returns, or a fresh C array where numpy would copy."""
    if a.shape == shape:
        return a
    if a.flags.c_contiguous:
        return a.reshape(shape)  # always a view
    try:
        return np.reshape(a, shape, copy=False)
    except (ValueError, TypeError):  # numpy would copy (TypeError: numpy < 2.1 cannot say; assume it)
        return _stand_in(shape, a.dtype)


_byte_bounds = np.lib.array_utils.byte_bounds if hasattr(np.lib, "array_utils") else np.byte_bounds  # numpy < 2


def _first_overlap(arrays) -> tuple | None:
    """(an out, what it overlaps) for some pair of ``arrays`` ((what, array, is an out) each)
    whose memory extents overlap where one of the two is an out, or None. The extents are
    np.may_share_memory's (first to last byte), sorted once and swept: linear after the sort,
    where checking each out against everything took quadratic time (6.6 ms for 36 outputs)."""
    spans = sorted((*_byte_bounds(a), what, is_out) for what, a, is_out in arrays if a.size)
    reach = reach_out = (None, None)  # (end, what) of the span reaching furthest: of all; of outs
    for start, end, what, is_out in spans:
        before = reach if is_out else reach_out  # an out may overlap anything, an input only an out
        if before[0] is not None and start < before[0]:
            return (what, before[1]) if is_out else (before[1], what)
        if reach[0] is None or end > reach[0]:
            reach = (end, what)
        if is_out and (reach_out[0] is None or end > reach_out[0]):
            reach_out = (end, what)
    return None


class Executable:
    """``fn(**arrays) -> {output name: ndarray}``; see ``report()`` and ``stats`` for the plan."""

    def __init__(self, plan: Plan):
        self.plan = plan
        graph, steps = self.graph, self.steps = plan.graph, plan.steps  # the scheduled groups
        self.kernels = plan.kernels  # group name -> KernelSource
        self.memory = plan.memory
        self.stats = plan.stats.as_dict()
        self.residuals = list(plan.residuals)  # what the backward keeps from the forward, or recomputes
        self._arena = None
        self._slots = {}  # value id -> its view of the arena, made with the arena
        self._shaped = {}  # (value id, shape) -> that view as a kernel takes it, made with the arena
        self._consts = {v.id: v.attrs["value"] for v in graph.nodes if v.op == "const"}
        self._kernel_args = []  # (value id, shape) of every arena argument of a loop kernel
        self._calls = []  # (KernelSource, how its arguments are found) of every kernel, in order
        self._fns = []  # the callable of each, None until warm() has compiled them all
        self._runners = [self._runner(group) for group in steps]
        self._outputs = list(graph.outputs.items())
        self._arguments = graph.arguments
        # the common call, checked in a few comparisons: exactly the arguments, ndarrays of the
        # declared dtype and shape (anything else goes through bind_arguments)
        self._signature = [(name, v.id, np.dtype(v.dtype), v.shape) for name, v in graph.arguments.items()]
        self._numpy_steps = any(step.kind is StepKind.LIBRARY and step.name not in self.kernels for step in steps)
        self._out_by_value = {}  # value id -> caller buffer, during a call with out=
        self._lock = threading.RLock()  # see one_at_a_time

    @one_at_a_time
    def release(self) -> None:
        """Free the arena now; the next call allocates it again."""
        self._arena, self._slots, self._shaped = None, {}, {}

    def report(self, loops: bool = False) -> str:
        """The compile report; ``loops=True`` adds whether LLVM vectorized each kernel's inner
        loops (see ``loops()``)."""
        if not loops:
            return self.plan.report
        rows = [f"    {name:<5} {describe(found)}" for name, found in self.loops().items()]
        return self.plan.report + "\n  inner loops (LLVM):\n" + "\n".join(rows) + "\n"

    def loops(self) -> dict:
        """``{kernel name: [Loop]}``: each loop kernel's innermost loops and whether LLVM
        vectorized them. Compiles the kernels first, and each once more for its IR (numba's
        cache keeps none): a second or so per kernel."""
        self.warm()
        return {ks.name: kernel_loops(load_kernel(ks.source)) for ks, _ in self._calls}

    def to_dot(self) -> str:
        """Graphviz DOT of the compiled IR with each fused kernel drawn as a cluster."""
        clusters = {s.name: (f"kernel {s.name}", [v.id for v in s.values])
                    for s in self.steps if s.kind is StepKind.LOOP}
        return to_dot(self.graph, clusters)

    # ------------------------------------------------------------ building the step closures

    def _buffer(self, v):
        """The array step ``v`` writes: the caller's ``out`` buffer, a fresh output or its arena slot."""
        if v.id in self.memory.fresh:
            given = self._out_by_value.get(v.id)
            return np.empty(v.shape, dtype=v.dtype) if given is None else given
        return self._slots[v.id]

    def _runner(self, group):
        if group.kind is StepKind.VIEW:
            (v,) = group.roots
            src, (attrs, view) = v.inputs[0].id, _view(v)

            def run_view(env):
                env[v.id] = view(attrs, env[src])
            return run_view
        if group.name not in self.kernels:  # a numpy call writing the buffer: BLAS matmul, concat
            (v,) = group.roots
            ins, call, attrs = [i.id for i in v.inputs], NUMPY_CALLS[v.op], v.attrs

            def run_numpy(env):
                out = env[v.id] = self._buffer(v)
                call(attrs, [env[i] for i in ins], out)
            return run_numpy
        ks = self.kernels[group.name]
        outs, ins = self._kernel_plan(ks)
        slot, fns = self._add_kernel(ks, (outs, ins)), self._fns
        extras = [np.zeros(size, dtype) for _, dtype, size in ks.extras]  # on the CPU only numba_cpu.ERR
        err = extras[0] if extras else None

        def run_kernel(env):
            fn = fns[slot]
            if fn is None:
                fn = self._kernel(slot)
            fn(*self._kernel_arguments(env, outs, ins), *extras)
            if err is not None and err[0]:  # a value out of its op's domain: the kernel recorded it
                error = ks.error(err)
                err[:] = 0
                raise error
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

    # ------------------------------------------------------------ compiling the kernels

    _compile_workers = True  # may codegen.warm compile in worker processes

    @one_at_a_time
    def warm(self):
        """Compile every kernel now (or load it from the cache) for the argument types the calls
        pass, so that no call compiles; returns the executable. The first call does this itself;
        ``gc.compile(..., eager=True)`` does it before returning. Types assume C-contiguous
        arguments, as numpy makes them: an argument of another layout compiles a variant of the
        kernels reading it on the call that passes it."""
        if self._calls and self._fns[0] is None:
            jobs = [(ks.source, self._argument_types(ks, plan)) for ks, plan in self._calls]
            for slot, fn in enumerate(compile_kernels(jobs, workers=self._compile_workers)):
                self._fns[slot] = self._first_run(slot, fn, self._bound(self._calls[slot][0], fn))
        return self

    def _add_kernel(self, ks, plan) -> int:
        """Register a kernel for ``warm``; its slot in ``_fns``."""
        self._calls.append((ks, plan))
        self._fns.append(None)
        return len(self._fns) - 1

    def _kernel(self, slot: int):
        """Kernel ``slot``'s callable, compiling every kernel first on the first call."""
        if self._fns[slot] is None:
            self.warm()
        return self._fns[slot]

    def _bound(self, ks, fn):
        """What a step calls: the dispatcher itself (CUDA: configured with its launch)."""
        return fn

    def _first_run(self, slot: int, dispatcher, call):
        """``call`` for the first run of kernel ``slot``: when that run made numba compile another
        variant (an argument of another layout than ``warm`` typed), numba's files for the kernel
        changed, and are sealed again."""
        source = self._calls[slot][0].source

        def first(*args):
            self._fns[slot] = call
            variants = len(dispatcher.overloads)
            call(*args)
            if len(dispatcher.overloads) > variants:
                seal(source)
        return first

    def _argument_types(self, ks, plan) -> tuple:
        """numba's types of the arguments ``_kernel_arguments`` passes the kernel, read off
        stand-ins of them (``_standing``), so ``warm`` compiles exactly what the calls use."""
        outs, ins = plan
        nodes = self.graph.nodes
        arrays = [_stand_in(shape, nodes[i].dtype) for i, shape, _ in outs]
        arrays += [_stand_in(shape, nodes[i].dtype) if in_arena else _reshaped(self._standing(nodes[i]), shape)
                   for i, shape, in_arena in ins]
        arrays += [_stand_in((size,), dtype) for _, dtype, size in ks.extras]
        return tuple(typeof(a) for a in arrays)

    def _standing(self, v) -> np.ndarray:
        """A stand-in for what ``env`` holds for ``v`` during a call: arguments are read-only views
        (``bind_arguments``), views what numpy makes of their sources, constants themselves,
        buffers (the arena's views, fresh outputs) C-contiguous and writeable."""
        if v.op in ARGUMENTS:
            return _stand_in(v.shape, v.dtype, writeable=False)
        if v.id in self._consts:
            return self._consts[v.id]
        if v.op in _VIEW:
            source = self._standing(v.inputs[0])
            if v.op == "reshape":
                return _reshaped(source, v.shape)
            attrs, view = _view(v)
            return view(attrs, source)
        return _stand_in(v.shape, v.dtype)

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
        for vid, a in self._consts.items():
            env[vid] = a
        if type(arrays) is dict and len(arrays) == len(self._signature):
            for name, vid, dtype, shape in self._signature:
                a = arrays.get(name)
                if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape:
                    break
                env[vid] = a.view()
                env[vid].flags.writeable = False  # as bind_arguments binds them
            else:
                return env
        for v, a in bind_arguments(self.graph, arrays).items():
            env[v.id] = a
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
        spans = [(f"input {n!r}", env[x.id], False) for n, x in self.graph.arguments.items()]
        overlap = _first_overlap(spans + [(f"out {n!r}", a, True) for n, a in out.items()])
        if overlap:
            raise ArgumentError(f"{overlap[0]}: shares memory with {overlap[1]}")
        return {outputs[n].id: a for n, a in reversed(list(out.items()))}

    @one_at_a_time
    @resource_errors
    def run(self, arrays: dict, out: dict | None = None) -> dict:
        """Like ``fn(**arrays)``; ``out={name: array}`` writes those outputs into the caller's
        arrays (no allocation, no page faults for big outputs) and returns them."""
        env = self._env(arrays)
        out = dict(out or {})
        self._out_by_value = self._check_out(out, env) if out else {}
        try:
            # IEEE results from BLAS and numpy, as the interpreter gives (kernels raise no warnings)
            with np.errstate(all="ignore") if self._numpy_steps else contextlib.nullcontext():
                for run in self._runners:
                    run(env)
            return self._results(env, out)
        finally:
            self._out_by_value = {}

    def __call__(self, /, *args, **arrays):  # positional-only self: an input may be named self
        by_name_only(self.graph, args, "fn({})")
        return self.run(arrays)

    @one_at_a_time
    @resource_errors
    def profile(self, /, *args, **arrays) -> dict:
        """One call, measured: ``time_s`` and each step's time, and ``peak_bytes``, the high-water
        mark of allocations during the call (``tracemalloc``, which numpy reports to), with the
        arena allocated afresh inside the call, next to ``planned_peak_bytes``."""
        by_name_only(self.graph, args, "fn.profile({})")
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
