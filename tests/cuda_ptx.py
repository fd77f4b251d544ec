"""Type, lower and compile every CUDA kernel of the test graphs for sm_90, as a GPU run would,
on a machine without one: the simulator only runs kernels as Python, so a kernel numba-cuda
would reject for the real target fails here, and nowhere else before a GPU.

Run by ``test_cuda.py`` in a subprocess with the simulator off:
``NUMBA_ENABLE_CUDASIM=0 python tests/cuda_ptx.py [--all] [-v]`` prints two lines,
``lowered: N kernels, M graphs`` and ``ptx: N kernels``, each ``...: skipped: why`` where a
library is missing. With the simulator off, numba-cuda needs the CUDA runtime library to import
at all and libNVVM even to lower a kernel to LLVM IR (it asks NVVM for the IR version), and
NVRTC as well for PTX (it asks which architectures it may target): all three come with the
``cuda-ptx`` extra (``pip install ".[test,cuda-ptx]"``), and a CUDA toolkit on the system may
provide them. Where all are found, each kernel goes through ``numba.cuda.compile_ptx``; where
NVRTC is not, through ``compile_cuda`` (typing and lowering, nine tenths of the time). Any
other failure, a kernel numba-cuda or NVVM rejects among them, exits non-zero with the
kernel's source.

This takes about a third of a second a kernel, so the test compiles one dtype of each op case
and the whole-graph cases (every kind of kernel, ~90); ``--all`` compiles every op case (~400).
"""

import importlib.util
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

import compiled  # noqa: E402,F401  (a private kernel cache)
import numpy as np  # noqa: E402
from cuda.pathfinder import BitcodeLibNotFoundError, DynamicLibNotFoundError  # noqa: E402
from numba.np.numpy_support import from_dtype  # noqa: E402
from test_compile_ops import CASES  # noqa: E402

import graphc as gc  # noqa: E402
from graphc import examples  # noqa: E402
from graphc.codegen.numba_cuda import simulator  # noqa: E402
from graphc.compiler import generate  # noqa: E402

MISSING = (DynamicLibNotFoundError, BitcodeLibNotFoundError)


def _not_found(e: Exception) -> str:
    return str(e).split(": No such file")[0]  # 'Failure finding "libnvrtc.so.13 or libnvrtc.so.12"'


try:  # with the simulator off, importing numba-cuda asks the CUDA runtime for its version
    from numba import cuda, types
    from numba.cuda.compiler import compile_cuda
except MISSING as e:
    NO_RUNTIME = _not_found(e)
else:
    NO_RUNTIME = None

CC = (9, 0)  # sm_90: the H100/H200 generation
INSTALL = "the cuda-ptx extra: pip install '.[test,cuda-ptx]'"
NEEDS = {"lowered": f"typing and lowering CUDA kernels needs the CUDA runtime and libNVVM, from {INSTALL}",
         "ptx": f"PTX compile checks need the CUDA runtime, NVVM and NVRTC, from {INSTALL}"}


# one case per op family, a float and an integer dtype among them; reductions come with the
# composites, two_layer and the full sum below
SOME = ("unary_float32", "unary_int64", "binary_float64", "binary_int32", "bool_ops", "cast", "layout_float32",
        "composites_float32")


def _graphs(every: bool):
    for name, build in CASES.items():
        if "large" not in name and (every or name in SOME):
            yield name, build()[0]
    yield "two_layer", examples.sgd_step(gc.grad(examples.two_layer(n=6, d_in=10, hidden=5, d_out=3)), lr=0.1)
    for remat in ("none", "sqrt", "mincut") if every else ("mincut",):
        yield f"residual_{remat}", (gc.grad(examples.residual_mlp(blocks=2, width=8, batch=4)), remat)
    yield "reduce_many_parts", _full_sum()


def _full_sum():
    g = gc.Graph("full_sum")
    x = g.input("x", (4096, 64))
    g.output("s", gc.sum(gc.exp(x)))
    g.output("softmax", gc.softmax(x))
    return g


def _array(dtype, ndim):
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


def _signature(ks):
    args = [_array(v.dtype, len(shape)) for v, shape in zip(ks.outputs, ks.out_shapes)]
    args += [_array(b.dtype, len(shape)) for b, shape in zip(ks.inputs, ks.in_shapes)]
    args += [_array(dtype, 1) for _, dtype, _ in ks.extras]
    return tuple(args)


def _kernel_function(source: str, directory: str):
    path = os.path.join(directory, f"k{abs(hash(source))}.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.kernel.py_func


def _lower(fn, signature):
    """Type and lower for the real target, without NVVM's last step (which needs NVRTC too)."""
    compile_cuda(fn, types.void, signature, cc=CC).library.get_llvm_str()


def _ptx(fn, signature):
    cuda.compile_ptx(fn, signature, cc=CC)


def _missing(compile_one):
    """Why ``compile_one`` cannot run here, or None: a one-line kernel through it fails to find
    a library (numba-cuda looks them up with cuda-pathfinder: the cuda-ptx extra's wheels, then
    a CUDA toolkit on the system)."""

    def probe(a):
        a[0] = 1.0

    try:
        compile_one(probe, (_array("float32", 1),))
    except MISSING as e:
        return _not_found(e)
    return None


def main():
    assert not simulator(), "run with NUMBA_ENABLE_CUDASIM=0"
    missing = {"lowered": NO_RUNTIME or _missing(_lower)}
    missing["ptx"] = missing["lowered"] or _missing(_ptx)
    skipped = {what: f"{what}: skipped: {NEEDS[what]} ({why})" for what, why in missing.items() if why}
    if len(skipped) == 2:
        print(*skipped.values(), sep="\n")
        return
    compile_one = _lower if "ptx" in skipped else _ptx
    n_kernels = n_graphs = 0
    with tempfile.TemporaryDirectory() as directory:
        for name, item in _graphs("--all" in sys.argv):
            graph, remat = item if isinstance(item, tuple) else (item, "none")
            plan = gc.compile(graph, remat=remat)  # the CPU executable carries the plan
            kernels, copies = generate(plan.graph, plan.steps, "cuda")
            for ks in list(kernels.values()) + list(copies.values()):
                try:
                    compile_one(_kernel_function(ks.source, directory), _signature(ks))
                except Exception as e:
                    raise SystemExit(f"{name}: kernel {ks.name} does not compile for sm_{CC[0]}{CC[1]}: "
                                     f"{type(e).__name__}: {e}\n{ks.source}") from None
                n_kernels += 1
            n_graphs += 1
            if "-v" in sys.argv:
                print(name, len(kernels) + len(copies), flush=True)
    print(f"lowered: {n_kernels} kernels, {n_graphs} graphs")
    print(skipped.get("ptx", f"ptx: {n_kernels} kernels"))


if __name__ == "__main__":
    main()
