"""Run every benchmark, each in its own process with the allocator settings pinned.

    python benchmarks/run.py            # all
    python benchmarks/run.py mlp gelu   # those whose file name contains a word
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# bench_compile_time.py is left out: its default cases take about 5 minutes (the 16-block
# residual net compiled cold three ways); run it by itself
SCRIPTS = ["bench_two_layer.py", "bench_call_overhead.py", "bench_mlp.py", "bench_elementwise.py", "bench_gelu.py",
           "bench_rows.py", "bench_models.py",
           "bench_compile.py", "bench_remat.py", "bench_remat_losses.py", "bench_chain_compile.py"]


def main():
    env = dict(os.environ)
    # glibc's default mmap threshold climbs to its 32 MiB maximum as a process frees large
    # blocks; pinning that maximum measures the steady state without depending on history
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 << 20))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(1 << 28))
    words = sys.argv[1:]
    failed = 0
    for script in SCRIPTS:
        if words and not any(w in script for w in words):
            continue
        failed |= subprocess.run([sys.executable, os.path.join(HERE, script)], env=env, cwd=HERE).returncode
        print()
    sys.exit(failed)


if __name__ == "__main__":
    main()
