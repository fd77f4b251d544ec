"""The CUDA executable: the same plan as on the CPU, run by ``cuda.jit`` kernels on one device.

Intermediate buffers are fixed views into one device arena laid out by the memory plan, so
every remat strategy runs unchanged. Arguments may be numpy arrays (copied in once per call)
or device arrays (anything with ``__cuda_array_interface__``: numba device arrays, CuPy,
PyTorch CUDA tensors), read in place. Kernels read views through index arithmetic, so nothing
moves between host and device between kernels; outputs come back as numpy arrays, or stay on
the device with ``device_outputs=True``. Kernels record an index out of range, or an integer
raised to a negative power, in a small device error array, read once after the call.
"""

import time

import numpy as np
from numba import types
from numba.np.numpy_support import from_dtype

from ..codegen.numba_cuda import cuda_module, simulator
from ..errors import ArgumentError, CompileError, DTypeError, ShapeError
from ..ir.interpret import bind_arguments, by_name_only, convert_argument
from ..passes.fusion import StepKind
from .executable import Executable, one_at_a_time, resource_errors
from .plan import Plan


def is_device_array(a) -> bool:
    return hasattr(a, "__cuda_array_interface__") or (simulator() and type(a).__name__ == "FakeCUDAArray")


class CudaExecutable(Executable):
    """``fn(**arrays, device_outputs=False) -> {output: ndarray or device array}``."""

    def __init__(self, plan: Plan):
        graph = plan.graph
        if "device_outputs" in graph.arguments:  # fn(device_outputs=...) is the call's option
            raise CompileError(f"graph {graph.name!r}: target 'cuda' calls take device_outputs= as an option, so an "
                               f"input or param may not be named device_outputs; rename it")
        self._cuda = cuda_module()
        self._copies = plan.copies  # output value id -> kernel copying a view, argument or constant
        self._device_bytes = 0  # bytes allocated on the device during the current call
        self._checks = []  # (step name, KernelSource) of every kernel that checks its operands
        super().__init__(plan)
        self._copy_slots = {vid: self._add_kernel(ks, None) for vid, ks in self._copies.items()}

    @one_at_a_time
    def release(self) -> None:
        super().release()
        self._scratch = {}

    def loops(self) -> dict:
        raise CompileError(f"graph {self.graph.name!r}: loops() reads how LLVM vectorized CPU kernels; a CUDA "
                           f"kernel runs one thread per element and has no such loops (compile for target='cpu')")

    # ------------------------------------------------------------ device memory

    def _alloc(self, shape, dtype):
        a = self._cuda.device_array(shape, dtype=dtype)
        self._device_bytes += a.nbytes
        return a

    def _to_device(self, a: np.ndarray):
        self._device_bytes += a.nbytes
        return self._cuda.to_device(np.ascontiguousarray(a))

    def _allocate(self):
        """The arena with a view per buffer, scratch for the kernels, and the constants."""
        self.release()
        self._arena = self._alloc(max(self.memory.arena_bytes, 1), np.uint8)
        for vid, offset in self.memory.offsets.items():
            v = self.graph.nodes[vid]
            raw = self._arena[offset:offset + v.type.nbytes]
            self._slots[vid] = raw.view(np.dtype(v.dtype)).reshape(v.shape or (1,))
        self._shaped = {(vid, shape): self._slots[vid].reshape(shape) for vid, shape in self._kernel_args}
        for name, ks in self.kernels.items():
            for arg, dtype, size in ks.extras:
                self._scratch[name, arg] = self._to_device(np.zeros(size, dtype=dtype))
        self._device_consts = {vid: self._to_device(np.reshape(a, np.shape(a) or (1,)))
                               for vid, a in self._consts.items()}

    # ------------------------------------------------------------ steps

    def _runner(self, group):
        if group.kind is StepKind.VIEW:
            return lambda env: None  # kernels read views by index arithmetic
        ks = self.kernels[group.name]
        outs, ins = self._kernel_plan(ks)
        slot = self._add_kernel(ks, (outs, ins))
        extras = [arg for arg, _, _ in ks.extras]
        if ks.faults:
            self._checks.append((group.name, ks))

        def run_kernel(env):
            launch = self._kernel(slot)
            launch(*self._kernel_arguments(env, outs, ins), *(self._scratch[group.name, e] for e in extras))
        return run_kernel

    # a worker process would need a CUDA context (and device memory) of its own: compile here
    _compile_workers = False

    def _bound(self, ks, fn):
        return fn[ks.launch]

    def _argument_types(self, ks, plan):
        """Every argument is a C-contiguous device array: the arena's views, fresh outputs, inputs
        copied in or checked C-contiguous, scratch. None under the simulator, which compiles
        nothing (it runs kernels as Python)."""
        if simulator():
            return None
        arrays = [(v.dtype, len(shape)) for v, shape in zip(ks.outputs, ks.out_shapes)]
        arrays += [(b.dtype, len(shape)) for b, shape in zip(ks.inputs, ks.in_shapes)]
        arrays += [(dtype, 1) for _, dtype, _ in ks.extras]
        return tuple(types.Array(from_dtype(np.dtype(dtype)), ndim, "C") for dtype, ndim in arrays)

    def _buffer(self, v):
        """A fresh device array for an output (the arena holds everything else)."""
        return self._alloc(v.shape or (1,), v.dtype)

    # ------------------------------------------------------------ running

    def _bind(self, arrays):
        """Device arrays are checked and read in place; everything else goes through the
        interpreter's checks and is copied in."""
        def convert(name, v, a):
            if not is_device_array(a):
                return convert_argument(name, v, a)
            a = a if hasattr(a, "copy_to_host") else self._cuda.as_cuda_array(a)
            if np.dtype(a.dtype) != np.dtype(v.dtype):
                raise DTypeError(f"{v.op} {name!r}: expected dtype {v.dtype}, got {np.dtype(a.dtype)} (device array)")
            if tuple(a.shape) != v.shape:
                raise ShapeError(f"{v.op} {name!r}: expected shape {v.shape}, got {tuple(a.shape)} (device array)")
            if not a.is_c_contiguous():
                raise ArgumentError(f"{v.op} {name!r}: a device array must be C-contiguous")
            return a
        bound = bind_arguments(self.graph, arrays, convert=convert)
        return {v: a if is_device_array(a) else self._to_device(a.reshape(a.shape or (1,))) for v, a in bound.items()}

    def _env(self, arrays):
        if self._arena is None:
            self._allocate()
        env = [None] * len(self.graph.nodes)
        for v, a in self._bind(arrays).items():
            env[v.id] = a if a.shape == (v.shape or (1,)) else a.reshape((1,))  # kernels read a 0-d array at [0]
        for vid, a in self._device_consts.items():
            env[vid] = a
        return env

    def _check_errors(self):
        """Raise the first fault a kernel recorded, in plan order, after clearing every kernel's
        record (a bad index also faults the kernels after it: none may fail the next call)."""
        first = None
        for name, ks in self._checks:
            err = self._scratch[name, "err"]
            error = ks.error(err.copy_to_host())
            if error:
                err.copy_to_device(np.zeros(2, np.int64))
                first = first or error
        if first:
            raise first

    def _device_results(self, env) -> dict:
        """Each output as a device array of its own shape (two names of one value get two arrays)."""
        results, given = {}, set()
        for name, v in self._outputs:
            if v.id in self._copy_slots:
                ks = self._copies[v.id]
                out = self._alloc(v.shape or (1,), v.dtype)
                args = [env[b.id] if b.id not in self.memory.offsets else self._slots[b.id] for b in ks.inputs]
                args = [a if a.shape == s else a.reshape(s) for a, s in zip(args, ks.in_shapes)]
                self._kernel(self._copy_slots[v.id])(out, *args)
            elif v.id in given:
                out = self._alloc(v.shape or (1,), v.dtype)
                out.copy_to_device(env[v.id])
            else:
                out = env[v.id]
                given.add(v.id)
            results[name] = out.reshape(v.shape) if v.shape != tuple(out.shape) else out
        return results

    @one_at_a_time
    @resource_errors
    def run(self, arrays: dict, out: dict | None = None, device_outputs: bool = False) -> dict:
        """Like ``fn(**arrays)``; ``out={name: ndarray}`` copies those outputs into the caller's
        arrays; ``device_outputs=True`` leaves every output on the device."""
        if out and device_outputs:
            raise ArgumentError("out= takes host arrays; it cannot be combined with device_outputs=True")
        self._device_bytes = 0
        env = self._env(arrays)
        if out:  # host buffers: checked like the CPU's (inputs live on the device, so none can overlap)
            self._check_out(dict(out), {v.id: np.empty(0) for v in self.graph.arguments.values()})
        for step in self._runners:
            step(env)
        results = self._device_results(env)
        self._check_errors()
        if device_outputs:
            return results
        host = {}
        for name, d in results.items():
            target = out.get(name) if out else None
            host[name] = d.copy_to_host(target) if target is not None else d.copy_to_host()
        return host

    def __call__(self, /, *args, device_outputs=False, **arrays):
        by_name_only(self.graph, args, "fn({})")
        return self.run(arrays, device_outputs=device_outputs)

    @one_at_a_time
    @resource_errors
    def profile(self, /, *args, **arrays) -> dict:
        """One call, each step timed by CUDA events (by the host clock under the simulator,
        which records no times); ``peak_bytes`` is the device memory the call allocated (arena,
        inputs copied in, outputs), all of it live at its end."""
        by_name_only(self.graph, args, "fn.profile({})")
        cuda = self._cuda
        self.release()
        self._device_bytes = 0
        start = time.perf_counter()
        env = self._env(arrays)
        marks = [_Mark(cuda) for _ in range(len(self._runners) + 1)]
        marks[0].record()
        for k, step in enumerate(self._runners):
            step(env)
            marks[k + 1].record()
        self._device_results(env)
        cuda.synchronize()
        total = time.perf_counter() - start
        self._check_errors()
        rows = [{"step": group.name, "kind": group.kind, "time_s": marks[k].seconds_to(marks[k + 1]),
                 "ops": [v.op for v in group.values]} for k, group in enumerate(self.steps)]
        return {"time_s": total, "peak_bytes": self._device_bytes, "planned_peak_bytes": self.memory.peak_bytes,
                "kernels": rows}


class _Mark:
    """A point in the stream: a CUDA event, or the host clock under the simulator."""

    def __init__(self, cuda):
        self._event = None if simulator() else cuda.event()
        self._t = 0.0

    def record(self):
        if self._event is None:
            self._t = time.perf_counter()
        else:
            self._event.record()

    def seconds_to(self, later) -> float:
        if self._event is None:
            return later._t - self._t
        later._event.synchronize()
        return self._event.elapsed_time(later._event) / 1e3
