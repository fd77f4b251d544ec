"""Cold first-call time: how long a fresh process with an empty kernel cache takes from
``import graphc`` to its first result, and a second process with the cache the first one filled.

Three cases: the README's two-layer gradient step (x 64x1000, w1 1000x100, w2 100x10, sigmoid,
sum of squares; ``gc.grad`` then compile and one call); the remat docs' 16-block residual
net ``residual_mlp(16, 128, 1024)`` compiled with remat none, sqrt and mincut one after the other
in one process, as ``gc.profile_remat`` does (kernels the plans share compile once); and the
gradient of an Elman RNN unrolled over 64 steps (``examples.unrolled_rnn()``), whose steps
share kernel sources. Each mode runs in a fresh process on a fresh cache directory:
- lazy: ``gc.compile(g)``, and the first call compiles the kernels (the default: worker
  processes from ``warm.MIN_PARALLEL`` uncached kernels on, one a CPU);
- serial: ``eager=True`` with ``GRAPHC_COMPILE_WORKERS=1``;
- parallel: ``eager=True`` with ``GRAPHC_COMPILE_WORKERS=2``;
then "warm": the same mode again in a second process, on the cache the first one left. The
mode ``jax`` (rnn64 only) times ``jax.jit`` of the same gradient in a fresh process: from
after ``import jax`` to its first result, compile included.

    python benchmarks/bench_compile_time.py [--cases two_layer,residual16,rnn64] [--modes lazy,serial,parallel,jax]

``--modes lazy`` also runs graphc versions without ``eager`` (for the figures before it).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import graphc as gc
from graphc.examples import residual_mlp, unrolled_rnn
from graphc.profile import example_arguments
t1 = time.perf_counter()
case, eager = sys.argv[1], sys.argv[2] == "1"


def two_layer():
    g = gc.Graph("two_layer")
    x, y = g.input("x", (64, 1000)), g.input("y", (64, 10))
    w1, w2 = g.param("w1", (1000, 100)), g.param("w2", (100, 10))
    h = gc.sigmoid(x @ w1)
    g.output("loss", gc.sum((h @ w2 - y) ** 2))
    return gc.grad(g), ["none"]


graph, plans = {"two_layer": two_layer, "rnn64": lambda: (gc.grad(unrolled_rnn(64)), ["none"]),
                "residual16": lambda: (gc.grad(residual_mlp(16, 128, 1024)), ["none", "sqrt", "mincut"])}[case]()
arrays = example_arguments(graph)
rows = []
for remat in plans:
    t = time.perf_counter()
    fn = gc.compile(graph, remat=remat, eager=True) if eager else gc.compile(graph, remat=remat)
    compiled = time.perf_counter()
    fn(**arrays)
    rows.append({"remat": remat, "kernels": fn.stats["n_loop_kernels"], "compile_s": compiled - t,
                 "distinct": len({ks.source for ks in fn.kernels.values()}),
                 "first_call_s": time.perf_counter() - compiled})
print(json.dumps({"import_s": t1 - t0, "to_result_s": time.perf_counter() - t1, "plans": rows}))
"""

# the same RNN as examples.unrolled_rnn(64), written for jax.jit
JAX_CHILD = r"""
import json, time
t0 = time.perf_counter()
import jax, jax.numpy as jnp
import numpy as np
t1 = time.perf_counter()
T, B, D, H = 64, 16, 32, 64


def loss(wx, wh, b, x, y):
    h = jnp.tanh(x[0] @ wx + b)
    for t in range(1, T):
        h = jnp.tanh(x[t] @ wx + h @ wh + b)
    return jnp.mean((h - y) ** 2)


rng = np.random.default_rng(0)
args = [(0.1 * rng.standard_normal(s)).astype(np.float32) for s in ((D, H), (H, H), (H,), (T, B, D), (B, H))]
step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
jax.block_until_ready(step(*args))
print(json.dumps({"import_s": t1 - t0, "to_result_s": time.perf_counter() - t1, "plans": [
    {"remat": "jax.jit", "kernels": 0, "distinct": 0, "compile_s": time.perf_counter() - t1, "first_call_s": 0.0}]}))
"""

MODES = {"lazy": ("0", None), "serial": ("1", "1"), "parallel": ("1", "2"), "jax": (None, None)}
# (eager, GRAPHC_COMPILE_WORKERS)


def run(case: str, mode: str, cache: str) -> dict:
    eager, workers = MODES[mode]
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache, GRAPHC_PROGRESS="0")
    env.pop("GRAPHC_COMPILE_WORKERS", None)  # lazy: graphc's own choice
    if workers:
        env["GRAPHC_COMPILE_WORKERS"] = workers
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = ["-c", JAX_CHILD] if mode == "jax" else ["-c", CHILD, case, eager]
    done = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{case} {mode}: the child failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["cpu_s"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime  # workers included
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="two_layer,residual16")
    parser.add_argument("--modes", default="lazy,serial,parallel")
    args = parser.parse_args()
    print("| case | mode | kernels (per plan) | cold: to first result | cold: CPU, all processes "
          "| cold: compile + first call, per plan | warm: to first result | import | load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        for mode in args.modes.split(","):
            if mode == "jax" and case != "rnn64":
                continue
            load = os.getloadavg()[0]  # the machine may be shared: wall times depend on it
            with tempfile.TemporaryDirectory() as cache:
                cold, warm = run(case, mode, cache), run(case, mode, cache)
            kernels = " / ".join(f"{p['kernels']} ({p['distinct']} distinct)" for p in cold["plans"])
            plans = ", ".join(f"{p['remat']} {p['compile_s'] + p['first_call_s']:.1f} s" for p in cold["plans"])
            print(f"| {case} | {mode} | {kernels} | {cold['to_result_s']:.1f} s | {cold['cpu_s']:.1f} s | {plans} | "
                  f"{warm['to_result_s']:.2f} s | {cold['import_s']:.2f} s | {load:.1f} |", flush=True)


if __name__ == "__main__":
    main()
