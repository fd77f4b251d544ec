"""The CUDA target on a GPU: bandwidth against a device copy kernel measured in the same run,
the MLP train step, the residual remat model, and matmul against cuBLAS (through PyTorch or
CuPy, where installed), each with device inputs and outputs left on the device.

    python benchmarks/bench_cuda.py            # needs an NVIDIA GPU
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --small   # a smoke run of the script

- fused elementwise: the GELU chain forward + backward over 2^26 float32 (reads x, writes dx:
  8 bytes an element), target at least 80% of the copy kernel's GB/s;
- reduction: sum over 2^26 float32 (4 bytes an element), target at least 70% of copy;
- the MLP 784-1024-1024-10 batch 256 SGD step and the 32-block residual model under each
  remat strategy, beside PyTorch on the GPU where installed;
- matmul float32 4096^3 in TFLOP/s, beside cuBLAS.
"""

import argparse
import math
import statistics

import numpy as np
from numba import cuda

import graphc as gc
from bench_elementwise import gelu_graph
from bench_mlp import mlp_graph
from common import median_time, torch_or_none
from graphc.codegen.numba_cuda import simulator
from graphc.examples import residual_mlp


@cuda.jit
def _copy(out, x):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < x.size:
        out[i] = x[i]
        i += step


def gpu_time(fn, repeat=20, warmup=3) -> float:
    """Median seconds of ``fn()`` between CUDA events (host clock under the simulator)."""
    if simulator():
        return median_time(fn, repeat=repeat, warmup=1)
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times)


def copy_gbps(n: int, repeat: int) -> float:
    x, out = cuda.to_device(np.ones(n, np.float32)), cuda.device_array(n, np.float32)
    t = gpu_time(lambda: _copy[min(-(-n // 256), 65535), 256](out, x), repeat=repeat)
    return 8 * n / t / 1e9


def _on_device(arrays):
    return {k: cuda.to_device(v) for k, v in arrays.items()}


def _step(fn, arrays):
    return lambda: fn.run(arrays, device_outputs=True)


def bandwidth(n: int, repeat: int, copy: float) -> None:
    rng = np.random.default_rng(0)
    gelu = gc.compile(gelu_graph(n=n), target="cuda")
    args = _on_device({"x": rng.standard_normal(n).astype(np.float32), "s": np.float32(1.5), "b": np.float32(0.1)})
    t = gpu_time(_step(gelu, args), repeat=repeat)
    print(f"   GELU chain fwd+bwd, {n} float32: {t * 1e3:.3f} ms, {8 * n / t / 1e9:.1f} GB/s, "
          f"{100 * 8 * n / t / 1e9 / copy:.0f}% of copy (target 80%)")
    g = gc.Graph("sum")
    g.output("s", gc.sum(g.input("x", (n,))))
    total = gc.compile(g, target="cuda")
    args = _on_device({"x": rng.standard_normal(n).astype(np.float32)})
    t = gpu_time(_step(total, args), repeat=repeat)
    print(f"   sum of {n} float32: {t * 1e3:.3f} ms, {4 * n / t / 1e9:.1f} GB/s, "
          f"{100 * 4 * n / t / 1e9 / copy:.0f}% of copy (target 70%)")


def mlp(repeat: int) -> None:
    rng = np.random.default_rng(0)
    dg = gc.grad(mlp_graph())
    for name, p in dg.params.items():
        dg.output(f"new_{name}", p - 1e-2 * dg.outputs[f"grad_{name}"])
    arrays = {n: (rng.standard_normal(v.shape) * 0.05).astype(v.dtype) if v.dtype != "int64"
              else rng.integers(0, 10, v.shape) for n, v in dg.arguments.items()}
    fn = gc.compile(dg, target="cuda")
    t = gpu_time(_step(fn, _on_device(arrays)), repeat=repeat)
    print(f"   MLP 784-1024-1024-10 batch 256 SGD step: graphc {t * 1e3:.3f} ms{_torch_mlp(arrays, repeat)}")


def _torch_mlp(arrays, repeat) -> str:
    torch = torch_or_none()
    if torch is None or not torch.cuda.is_available():
        return ""
    dev = {k: torch.tensor(v, device="cuda") for k, v in arrays.items()}
    ws = [dev[f"w{k}"].requires_grad_() for k in range(3)]
    bs = [dev[f"b{k}"].requires_grad_() for k in range(3)]

    def step():
        h = dev["x"]
        for k in range(3):
            h = h @ ws[k] + bs[k]
            h = torch.relu(h) if k < 2 else h
        loss = torch.nn.functional.cross_entropy(h, dev["labels"])
        grads = torch.autograd.grad(loss, ws + bs)
        return [p - 1e-2 * g for p, g in zip(ws + bs, grads)]
    t = gpu_time(step, repeat=repeat)
    return f", PyTorch {t * 1e3:.3f} ms"


def remat(blocks: int, width: int, batch: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    dg = gc.grad(residual_mlp(blocks, width, batch))
    arrays = _on_device({n: (rng.standard_normal(v.shape) / math.sqrt(v.shape[0])).astype(np.float32)
                         for n, v in dg.arguments.items()})
    base = None
    for strategy in ("none", "sqrt", "mincut"):
        fn = gc.compile(dg, target="cuda", remat=strategy)
        t = gpu_time(_step(fn, arrays), repeat=repeat)
        base = base or t
        print(f"   remat {strategy:<7} planned peak {fn.stats['peak_bytes'] / 2**20:8.1f} MB, "
              f"step {t * 1e3:8.3f} ms ({t / base:.2f}x none)")


def matmul(n: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    g = gc.Graph("matmul")
    g.output("c", g.input("a", (n, n)) @ g.input("b", (n, n)))
    fn = gc.compile(g, target="cuda")
    args = _on_device({k: rng.standard_normal((n, n)).astype(np.float32) for k in "ab"})
    t = gpu_time(_step(fn, args), repeat=repeat)
    line = f"   matmul {n}^3 float32: graphc {2 * n ** 3 / t / 1e12:.2f} TFLOP/s"
    torch = torch_or_none()
    if torch is not None and torch.cuda.is_available():
        a, b = (torch.randn(n, n, device="cuda") for _ in range(2))
        torch.backends.cuda.matmul.allow_tf32 = False
        tb = gpu_time(lambda: a @ b, repeat=repeat)
        line += f", cuBLAS (PyTorch) {2 * n ** 3 / tb / 1e12:.2f} TFLOP/s: {100 * tb / t:.0f}% of it (target 30%)"
    print(line)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--small", action="store_true", help="tiny sizes: check the script, e.g. in the simulator")
    args = p.parse_args()
    if not cuda.is_available():
        raise SystemExit("no usable NVIDIA GPU: bench_cuda.py measures the CUDA target on one")
    small = args.small
    repeat = 2 if small else 20
    n = 1 << (10 if small else 26)
    name = "simulator" if small else cuda.get_current_device().name
    print(f"== CUDA target on {name}")
    copy = copy_gbps(n, repeat)
    print(f"   device copy kernel, {n} float32: {copy:.1f} GB/s")
    bandwidth(n, repeat, copy)
    if not small:
        mlp(repeat)
    remat(*((2, 8, 4) if small else (32, 256, 4096)), repeat)
    matmul(8 if small else 4096, repeat)


if __name__ == "__main__":
    main()
