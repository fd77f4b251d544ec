"""Compiling a plan's kernels before they run: a progress line, and worker processes.

numba compiles one kernel in about half a second (typing, lowering, LLVM) and one at a time per
process (its compiler lock), so a plan of a hundred kernels not yet in the cache takes a minute
on its first call. ``compile_kernels`` compiles them all at once, for the argument types the
executable will pass, so no call compiles:
- On a terminal it shows ``graphc: compiling kernel 3 of 17 ...`` rewritten in place, then the
  total time; ``GRAPHC_PROGRESS=1`` shows it anywhere, ``GRAPHC_PROGRESS=0`` never.
- From ``MIN_PARALLEL`` uncached kernels on, with more than one CPU, worker processes compile
  them (``warm_worker``: each imports the kernel from the cache directory and compiles it,
  which writes numba's cache files, and seals them), and this process then loads every kernel
  from numba's cache in milliseconds. ``GRAPHC_COMPILE_WORKERS=N`` sets the number of workers
  for any two or more uncached kernels; 1 compiles here, one kernel after another.
- Workers are fresh interpreters (``python -m``), never forks of this process (numba's threads
  may be running) and never a re-import of the caller's ``__main__`` (as multiprocessing's
  spawn would do, running an unguarded script again). A kernel a worker did not compile (it
  failed, died, or sat ``STALL_S`` without finishing one) is compiled here: a broken worker
  costs time, never the result.
"""

import base64
import json
import os
import pickle
import queue
import subprocess
import sys
import threading
import time

from ..errors import CompileError
from .cache import cache_dir, is_cached, kernel_key, load_kernel, seal

MIN_PARALLEL = 8  # uncached kernels: below this, starting a worker (Python, numpy, numba: ~0.8 s) costs what it saves
MAX_WORKERS = 8  # each worker holds its own numba and LLVM (~150 MB)
STALL_S = 120.0  # no kernel finished in any worker for this long: they hang, and are stopped


def compile_kernels(jobs: list, workers: bool = True) -> list:
    """The dispatcher of each job ``(source, argument types)``, compiled for those types or loaded
    from numba's cache (types ``None``: imported only, for the CUDA simulator); ``workers=False``
    compiles in this process only. Jobs of one source (an unrolled loop's steps) share one
    dispatcher, compiled once for each distinct argument types, all by the same process."""
    signatures = {}  # kernel key -> (source, the distinct argument types its jobs pass)
    for source, types in jobs:
        if types is not None:
            wanted = signatures.setdefault(kernel_key(source), (source, []))[1]
            if types not in wanted:
                wanted.append(types)
    pending = [key for key, (source, _) in signatures.items() if not is_cached(source)]
    n_workers = _workers(len(pending)) if workers else 0
    progress = _Progress(len(pending), n_workers)
    by_workers = _in_workers([signatures[key] for key in pending], n_workers, progress) if n_workers else set()
    here = set(pending) - {pending[k] for k in by_workers}
    for key, (source, wanted) in signatures.items():
        fn = load_kernel(source)
        for types in wanted:
            fn.compile(types)  # compiles if key is in here, else loads what numba cached
        seal(source)
        if key in here:
            progress.advance()
    progress.close()
    return [load_kernel(source) for source, _ in jobs]


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _workers(pending: int) -> int:
    """Worker processes for ``pending`` uncached kernels (0: compile them here)."""
    text = os.environ.get("GRAPHC_COMPILE_WORKERS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise CompileError(f"GRAPHC_COMPILE_WORKERS={text!r}: expected a number of worker processes "
                               f"(1: compile in this process)")
        n = min(int(text), pending)
        return n if n > 1 else 0
    cpus = _cpus()
    return min(cpus, MAX_WORKERS, pending) if cpus > 1 and pending >= MIN_PARALLEL else 0


def _progress_shown() -> bool:
    text = os.environ.get("GRAPHC_PROGRESS", "").strip()
    if text not in ("", "0", "1"):
        raise CompileError(f"GRAPHC_PROGRESS={text!r}: expected 1 (always show compile progress) or 0 (never)")
    if text:
        return text == "1"
    return sys.stderr is not None and sys.stderr.isatty()


class _Progress:
    """``graphc: compiling kernel k of n ...`` on stderr, rewritten in place (``\\r``)."""

    def __init__(self, total: int, workers: int):
        self.shown = _progress_shown() and total > 0
        self.total, self.finished, self.start = total, 0, time.perf_counter()
        self.where = f" ({workers} worker processes)" if workers else ""
        self.width = 0
        self.lock = threading.Lock()
        self._show(f"graphc: compiling kernel 1 of {total}{self.where} ...")

    def advance(self) -> None:
        """One more kernel compiled."""
        with self.lock:
            self.finished += 1
            if self.finished < self.total:
                self._show(f"graphc: compiling kernel {self.finished + 1} of {self.total}{self.where} ...")

    def close(self) -> None:
        seconds = time.perf_counter() - self.start
        self._show(f"graphc: compiled {self.total} kernels in {seconds:.1f} s{self.where}", end="\n")

    def _show(self, text: str, end: str = "") -> None:
        if self.shown:
            sys.stderr.write("\r" + text.ljust(self.width) + end)
            sys.stderr.flush()
            self.width = len(text)


def _worker_command() -> list:
    return [sys.executable, "-m", "graphc.codegen.warm_worker"]


def _worker_env() -> dict:
    """This process's environment, with its cache directory and its graphc first on the path."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, GRAPHC_CACHE_DIR=cache_dir(), PYTHONPATH=root + (os.pathsep + path if path else ""))


def _ask(proc, job) -> bool:
    """Have worker ``proc`` compile ``job`` (a source and the argument types to compile it for);
    whether it did."""
    source, wanted = job
    request = {"source": source, "types": base64.b64encode(pickle.dumps(wanted)).decode("ascii")}
    try:
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip() == "ok"
    except (OSError, ValueError):  # the worker died, or was stopped: its pipes are broken or closed
        return False


def _in_workers(jobs: list, n: int, progress: _Progress) -> set:
    """Compile ``jobs`` in ``n`` worker processes, each taking the next job when it is done with
    one; the indices of the jobs compiled (the caller compiles the others)."""
    todo, events = queue.SimpleQueue(), queue.SimpleQueue()
    for i in range(len(jobs)):
        todo.put(i)
    done, procs = set(), []

    def drive():
        try:
            proc = subprocess.Popen(_worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, env=_worker_env())
        except OSError:
            events.put(None)
            return
        procs.append(proc)
        try:
            while proc.poll() is None:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    break
                if _ask(proc, jobs[i]):
                    done.add(i)
                    progress.advance()
                events.put(i)
        finally:
            proc.kill()
            proc.wait()
            events.put(None)

    for _ in range(n):
        threading.Thread(target=drive, daemon=True).start()
    running = n
    try:
        while running:
            try:
                if events.get(timeout=STALL_S) is None:
                    running -= 1
            except queue.Empty:
                for proc in procs:
                    proc.kill()
    finally:  # also on KeyboardInterrupt: no worker outlives the call
        for proc in procs:
            proc.kill()
    return done
