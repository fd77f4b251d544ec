"""Compile latency of the two-layer train step: a fresh process with an empty kernel cache
(cold), then a second fresh process with the cache the first one filled (warm). Each child
reports the seconds from after ``import graphc`` to its first result, and the import itself."""

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import graphc as gc
from graphc.examples import sgd_step, two_layer
t1 = time.perf_counter()
g = two_layer()
step = gc.compile(sgd_step(gc.grad(g), 1e-4))
rng = np.random.default_rng(0)
out = step(**{n: rng.standard_normal(v.shape).astype(np.float32) for n, v in g.arguments.items()})
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_result_s": t2 - t1}))
"""


def run(cache: str) -> dict:
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = run(cache), run(cache)
    print("== compile latency, two-layer train step (fresh processes)")
    print(f"   cold (empty cache): {cold['first_result_s']:.2f} s to first result after import "
          f"(import {cold['import_s']:.2f} s); target <= 3 s")
    print(f"   warm (second process): {warm['first_result_s']:.2f} s to first result after import "
          f"(import {warm['import_s']:.2f} s); target <= 0.5 s")


if __name__ == "__main__":
    main()
