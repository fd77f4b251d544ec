"""One executable called from several threads: every result is the one a lone call gives
(calls take turns under the executable's lock; they used to share one arena and 12-208 of 800
calls came back wrong, with nothing raised)."""

import threading

import numpy as np

import compiled  # noqa: F401  (a private kernel cache for the tests)
import graphc as gc

THREADS, CALLS = 4, 50


def _graph():
    g = gc.Graph("threads")
    x, w = g.input("x", (32, 16), "float64"), g.param("w", (16, 8), "float64")
    h = gc.tanh(x @ w)
    g.output("loss", gc.sum(h * h))
    return gc.grad(g)


def _run_threads(work) -> list:
    errors = []

    def guarded(k):
        try:
            work(k)
        except Exception as e:  # noqa: BLE001 - reported to the main thread below
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_calls_give_the_results_of_lone_calls():
    dg = _graph()
    fn = gc.compile(dg)
    rng = np.random.default_rng(0)
    args = [{"x": rng.standard_normal((32, 16)), "w": rng.standard_normal((16, 8))} for _ in range(THREADS * CALLS)]
    expected = [gc.compile(dg)(**a) for a in args]  # another executable, one call at a time
    got = [None] * len(args)

    def work(k):
        for i in range(k, len(args), THREADS):
            if i % 7 == 0:
                out = {"loss": np.empty(()), "grad_w": np.empty((16, 8))}
                got[i] = fn.run(args[i], out=out)
            else:
                got[i] = fn(**args[i])
            if i % 11 == 0:
                fn.release()  # freeing the arena mid-stream must not pull it from under a call
    assert _run_threads(work) == []
    wrong = [i for i in range(len(args)) if any(not np.array_equal(got[i][k], expected[i][k]) for k in expected[i])]
    assert wrong == []


def test_profile_and_calls_from_several_threads():
    fn = gc.compile(_graph())
    a = {"x": np.ones((32, 16)), "w": np.full((16, 8), 0.1)}
    expected = fn(**a)
    seen = []

    def work(k):
        for _ in range(10):
            out = fn.profile(**a) if k == 0 else fn(**a)
            seen.append(out["peak_bytes"] > 0 if k == 0 else all(np.array_equal(out[n], expected[n]) for n in expected))
    assert _run_threads(work) == []
    assert len(seen) == 10 * THREADS and all(seen)


def test_first_calls_from_several_threads_compile_once():
    fn = gc.compile(_graph())
    a = {"x": np.ones((32, 16)), "w": np.full((16, 8), 0.1)}
    results = []
    assert _run_threads(lambda k: results.append(fn(**a))) == []
    assert len(results) == THREADS
    for r in results[1:]:
        for n in r:
            np.testing.assert_array_equal(r[n], results[0][n])
