"""Rematerialization on an activation-dominated model: 32 residual blocks
``h = h + gelu(layer_norm(h) @ W_i)``, width 256, batch 4096, float32, loss ``mean(h**2)``.

For each graphc strategy: planned and measured peak, saved bytes, recompute overhead and step
time, in this process. Then every plan, and JAX (``jax.checkpoint`` on every block and on
sqrt(n) segments) and PyTorch (``checkpoint_sequential``) where installed, each in a fresh
process, by peak RSS above the RSS once its model and data are in memory.

    python benchmarks/bench_remat.py [--blocks 32 --width 256 --batch 4096]
"""

import argparse
import ctypes
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np

from common import jax_or_none, median_time, torch_or_none

STRATEGIES = ("none", "sqrt", "mincut")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak RSS, to the current RSS


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def _return_freed_memory(small: bool) -> None:
    """With ``small``, glibc maps every block over 128 KiB on its own and returns it when freed,
    so RSS follows what is live; otherwise the 32 MiB thresholds the timings use."""
    libc = ctypes.CDLL("libc.so.6")
    threshold = (128 << 10) if small else (32 << 20)
    libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, threshold)  # M_TRIM_THRESHOLD


def _arrays(blocks, width, batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    ws = [(rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32) for _ in range(blocks)]
    return x, ws


def _graphc(strategy, blocks, width, batch):
    import graphc as gc
    from graphc.examples import residual_mlp

    fn = gc.compile(gc.grad(residual_mlp(blocks, width, batch)), remat=strategy)
    x, ws = _arrays(blocks, width, batch)
    args = {"x": x, **{f"w{i}": w for i, w in enumerate(ws)}}
    step = lambda: fn(**args)  # noqa: E731
    step.release = fn.release  # the arena is allocated again inside the measured step
    return step


def _jax(kind, blocks, width, batch):
    jax = jax_or_none()
    import jax.numpy as jnp

    def block(h, w):
        mu = h.mean(-1, keepdims=True)
        xc = h - mu
        n = xc * jax.lax.rsqrt((xc * xc).mean(-1, keepdims=True) + 1e-5)
        return h + jax.nn.gelu(n @ w, approximate=True)

    seg = math.isqrt(blocks - 1) + 1 if kind == "sqrt" else 1

    def segment(h, ws):
        for w in ws:
            h = block(h, w)
        return h

    step_fn = jax.checkpoint(segment) if kind != "none" else segment

    def loss(ws, x):
        h = x
        for k in range(0, blocks, seg):
            h = step_fn(h, ws[k:k + seg])
        return jnp.mean(h * h)

    grad = jax.jit(jax.value_and_grad(loss))
    x, ws = _arrays(blocks, width, batch)
    jws, jx = [jnp.asarray(w) for w in ws], jnp.asarray(x)
    return lambda: jax.block_until_ready(grad(jws, jx))


def _torch(kind, blocks, width, batch):
    torch = torch_or_none()
    from torch.utils.checkpoint import checkpoint_sequential

    class Block(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(w))

        def forward(self, h):
            n = torch.nn.functional.layer_norm(h, h.shape[-1:], eps=1e-5)
            return h + torch.nn.functional.gelu(n @ self.w, approximate="tanh")

    x, ws = _arrays(blocks, width, batch)
    model = torch.nn.Sequential(*[Block(w) for w in ws])
    tx = torch.tensor(x)

    def step():
        model.zero_grad(set_to_none=True)
        if kind == "sqrt":
            h = checkpoint_sequential(model, math.isqrt(blocks - 1) + 1, tx, use_reentrant=False)
        else:
            h = model(tx)
        loss = (h * h).mean()
        loss.backward()
        return loss.item()
    return step


WORKERS = {"graphc": _graphc, "jax": _jax, "pytorch": _torch}


def worker(system, kind, blocks, width, batch, repeat):
    """Run in a fresh process: the peak RSS of one step over the ready state (model, data and
    compiled code in memory), then the median step time."""
    step = WORKERS[system](kind, blocks, width, batch)
    _return_freed_memory(True)
    before = _rss_bytes()
    step()  # compiles (JAX, graphc kernels)
    getattr(step, "release", lambda: None)()
    ready = _rss_bytes()
    _reset_peak_rss()
    step()
    peak = _peak_rss_bytes()
    _return_freed_memory(False)
    seconds = median_time(step, repeat=repeat, warmup=1)
    print(json.dumps({"peak_rss": peak, "ready_rss": ready, "before_rss": before, "time_s": seconds}))


def _run_worker(system, kind, args) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", system, kind, "--blocks", str(args.blocks),
           "--width", str(args.width), "--batch", str(args.batch), "--repeat", str(args.repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        print(f"   {system} {kind}: failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", type=int, default=32)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--worker", nargs=2)
    args = p.parse_args()
    if args.worker:
        return worker(*args.worker, args.blocks, args.width, args.batch, args.repeat)

    import graphc as gc
    from graphc.examples import residual_mlp

    dg = gc.grad(residual_mlp(args.blocks, args.width, args.batch))
    x, ws = _arrays(args.blocks, args.width, args.batch)
    arrays = {"x": x, **{f"w{i}": w for i, w in enumerate(ws)}}
    print(f"== remat: {args.blocks} residual blocks, width {args.width}, batch {args.batch}, float32 (this process)")
    print(f"   {'strategy':<10}{'planned':>11}{'measured':>11}{'saved':>11}{'recompute':>11}{'step':>10}{'vs none':>9}")
    base = None
    for s in STRATEGIES:
        t = time.perf_counter()
        fn = gc.compile(dg, remat=s)
        compile_s = time.perf_counter() - t
        fn(**arrays)
        measured = fn.profile(**arrays)["peak_bytes"]
        step = median_time(lambda: fn(**arrays), repeat=args.repeat, warmup=1)
        st = fn.stats
        base = base or step
        print(f"   {s:<10}{st['peak_bytes'] / 2**20:>9.1f}MB{measured / 2**20:>9.1f}MB"
              f"{st['saved_bytes'] / 2**20:>9.1f}MB{100 * st['recompute_flops'] / st['forward_flops']:>10.1f}%"
              f"{step * 1e3:>8.1f}ms{step / base:>8.2f}x   (compile {compile_s:.1f} s, measured/planned "
              f"{measured / st['peak_bytes']:.3f})")

    print("== peak RSS of a step, fresh process each: over the RSS once compiled (what a step adds; "
          "misses memory a runtime pools across steps) and over the RSS before the first step")
    print(f"   {'system':<22}{'over compiled':>15}{'over start':>13}{'step':>10}")
    runs = [("graphc", s) for s in STRATEGIES]
    runs += [("jax", k) for k in ("none", "block", "sqrt")] if jax_or_none() else []
    runs += [("pytorch", k) for k in ("none", "sqrt")] if torch_or_none() else []
    for system, kind in runs:
        r = _run_worker(system, kind, args)
        if r:
            grow, total = r["peak_rss"] - r["ready_rss"], r["peak_rss"] - r["before_rss"]
            print(f"   {system + ' ' + kind:<22}{grow / 2**20:>13.1f}MB{total / 2**20:>11.1f}MB"
                  f"{r['time_s'] * 1e3:>8.1f}ms")


if __name__ == "__main__":
    main()
