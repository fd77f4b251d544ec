"""`graphc grad` and `graphc compile` from the shell, and the demo's training run."""

import re

import numpy as np
import pytest

import compiled  # noqa: F401  (sets GRAPHC_CACHE_DIR, which the subprocesses inherit)
import graphc as gc
from graphc import examples
from test_cli import assert_clean_failure, run


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_compile")
    gc.save(examples.two_layer(n=8, d_in=12, hidden=6, d_out=3), d / "m.json")
    return d


def test_grad_writes_the_gradient_graph_and_counts(model):
    r = run(["grad", "m.json", "--of", "loss", "--wrt", "w1,w2", "-o", "g.json"], cwd=model)
    assert r.returncode == 0, r.stderr
    derived, simplified = map(int, re.search(r"(\d+) values as derived, (\d+) after", r.stdout).groups())
    assert simplified < derived
    dg = gc.load(model / "g.json")
    assert list(dg.outputs) == ["loss", "grad_w1", "grad_w2"] and len(dg.nodes) == simplified
    expected = gc.grad(examples.two_layer(n=8, d_in=12, hidden=6, d_out=3), of="loss", wrt=["w1", "w2"])
    assert gc.to_text(dg) == gc.to_text(expected).replace("graph two_layer_grad", f"graph {dg.name}")


def test_grad_to_stdout_is_text(model):
    r = run(["grad", "m.json", "--wrt", "w2"], cwd=model)
    assert r.returncode == 0, r.stderr
    g = gc.from_text(r.stdout)
    assert "grad_w2" in g.outputs and "grad_w1" not in g.outputs
    assert "after simplification" in r.stderr


@pytest.mark.parametrize("args, words", [
    (["grad", "m.json", "--wrt", "nope"], ["nope"]),
    (["grad", "m.json", "--of", "missing"], ["missing"]),
    (["grad", "absent.json"], ["absent.json"]),
    (["compile", "absent.json"], ["absent.json"]),
])
def test_grad_and_compile_errors_are_one_clean_line(model, args, words):
    assert_clean_failure(run(args, cwd=model), *words)


def test_compile_prints_the_report_and_dumps_every_pass(model):
    r = run(["compile", "m.json", "--dump", "ir"], cwd=model)
    assert r.returncode == 0, r.stderr
    assert "graphc compile report" in r.stdout and "fused loop kernels" in r.stdout
    kernels = re.findall(r"^\s+(k\d+)\s+loop", r.stdout, re.M)
    assert kernels
    dumped = sorted(p.name for p in (model / "ir").iterdir())
    assert dumped[:6] == ["0-input.txt", "1-simplify.txt", "2-remat.txt", "3-fuse.txt", "4-schedule.txt", "5-memory.txt"]
    assert {f"6-codegen-{k}.py" for k in kernels} <= set(dumped)
    for name in dumped[:5]:
        gc.verify(gc.from_text((model / "ir" / name).read_text()))


def test_no_fuse_compiles_one_kernel_per_op(model):
    fused = run(["compile", "m.json"], cwd=model)
    unfused = run(["compile", "m.json", "--no-fuse"], cwd=model)
    count = lambda r: int(re.search(r"\((\d+) fused loop kernels", r.stdout).group(1))  # noqa: E731
    assert unfused.returncode == 0 and count(unfused) > count(fused)


def test_demo_trains_and_reports(tmp_path):
    r = run(["demo", "--steps", "40"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    losses = [float(x) for x in re.findall(r"\d+/40\s+loss ([\d.e+-]+)", r.stdout)]
    assert len(losses) >= 3 and losses[-1] < losses[0] / 2
    assert "graphc compile report" in r.stdout
    assert np.isfinite(losses).all()


def test_compile_for_cuda(model):
    """--target cuda: on a GPU, or in the simulator that conftest.py turns on (subprocesses
    inherit it)."""
    r = run(["compile", "m.json", "--target", "cuda"], cwd=model)
    assert r.returncode == 0, r.stderr
    assert "codegen (numba cuda)" in r.stdout
