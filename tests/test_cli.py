"""The `graphc` command, run as a real subprocess (`python -m graphc`, and the console script
when it is on PATH): demo, show in every format, and clean one-line errors for bad input."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import graphc as gc
from graphc import examples

CONSOLE_SCRIPT = shutil.which("graphc")


def run(args, cwd, script=False):
    cmd = [CONSOLE_SCRIPT] if script else [sys.executable, "-m", "graphc"]
    env = dict(os.environ, PYTHONWARNINGS="")
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          errors="replace", timeout=120, env=env)


def assert_clean_failure(r, *fragments):
    assert r.returncode != 0, f"expected failure, got rc 0; stdout={r.stdout!r}"
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert r.stderr.strip(), "a failure must say why on stderr"
    assert "error" in r.stderr.lower(), r.stderr
    for f in fragments:
        assert f in r.stderr, f"{f!r} not in stderr {r.stderr!r}"


# ---------------------------------------------------------------- demo and show


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """`graphc demo --save demo.json`, run once for the module."""
    d = tmp_path_factory.mktemp("cli")
    r = run(["demo", "--save", "demo.json"], cwd=d)
    return d, r


def test_demo_prints_ir_and_loss(saved):
    _, r = saved
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    for fragment in ("graph two_layer {", "sigmoid", "matmul", "output loss", "input x", "param w1"):
        assert fragment in out, fragment
    loss_lines = [ln for ln in out.splitlines() if "interpreter" in ln and "loss =" in ln]
    assert len(loss_lines) == 1, out
    value = float(loss_lines[0].split("loss =")[1].split()[0])
    assert value > 0  # a sum of squares on random data


def test_demo_ir_block_parses_back(saved):
    _, r = saved
    lines = r.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("graph two_layer"))
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    text = "\n".join(lines[start:end + 1]) + "\n"
    assert gc.to_text(gc.from_text(text)) == text
    assert text == gc.to_text(examples.two_layer())


def test_demo_save_writes_loadable_json(saved):
    d, r = saved
    path = d / "demo.json"
    assert path.exists()
    assert "demo.json" in r.stdout
    g = gc.load(path)
    gc.verify(g)
    assert gc.to_text(g) == gc.to_text(examples.two_layer())


def test_show_json_as_text(saved):
    d, _ = saved
    r = run(["show", "demo.json"], cwd=d)
    assert r.returncode == 0, r.stderr
    assert r.stdout == gc.to_text(examples.two_layer())
    assert "output loss = %11" in r.stdout


def test_show_format_json_loads_back(saved):
    d, _ = saved
    r = run(["show", "demo.json", "--format", "json"], cwd=d)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "graphc-ir" and doc["name"] == "two_layer"
    assert r.stdout == (d / "demo.json").read_text()
    assert gc.to_text(gc.from_json(r.stdout)) == gc.to_text(examples.two_layer())


def test_show_format_dot(saved):
    d, _ = saved
    r = run(["show", "demo.json", "--format", "dot"], cwd=d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("digraph")
    assert r.stdout.rstrip().endswith("}")
    assert "sigmoid" in r.stdout and "->" in r.stdout and "loss" in r.stdout


def test_show_text_ir_file(tmp_path):
    g = gc.Graph("circuit")
    x, y, z = (g.input(n, ()) for n in "xyz")
    g.output("f", (x + y) * z)
    text = gc.to_text(g)
    (tmp_path / "c.ir").write_text("# a comment line\n" + text)
    r = run(["show", "c.ir"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == text
    r = run(["show", "c.ir", "--format", "json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outputs"] == [{"name": "f", "value": 4}]


@pytest.mark.skipif(CONSOLE_SCRIPT is None, reason="the graphc console script is not on PATH")
def test_console_script(saved):
    d, _ = saved
    r = run(["show", "demo.json"], cwd=d, script=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == gc.to_text(examples.two_layer())
    r = run(["show", "no_such_file.json"], cwd=d, script=True)
    assert_clean_failure(r, "no_such_file.json")


# ---------------------------------------------------------------- error paths


def _bad_version(d):
    return gc.to_json(examples.two_layer(n=2, d_in=3, hidden=2, d_out=1)).replace('"version": 1', '"version": 2')


def _bad_op(d):
    return gc.to_json(examples.two_layer(n=2, d_in=3, hidden=2, d_out=1)).replace('"sigmoid"', '"frobnicate"')


def _bad_shape(d):
    return gc.to_json(examples.two_layer(n=2, d_in=3, hidden=2, d_out=1)).replace('"shape": [2, 3]', '"shape": [2, "3"]', 1)


CASES = {
    # name: (file content (str or bytes) or None for no file, fragments expected in stderr)
    "missing_file": (None, ["nope.json"]),
    "empty_file": ("", []),
    "malformed_json": ('{"format": "graphc-ir", "version": 1,', ["JSON"]),
    "json_not_an_object": ('{"a": [1, 2', ["JSON"]),
    "json_bad_version": (_bad_version, ["$.version"]),
    "json_unknown_op": (_bad_op, ["frobnicate"]),
    "json_bad_shape_entry": (_bad_shape, ["$.nodes[0].shape"]),
    "garbage_text": ("hello world\nthis is not IR\n", ["line 1"]),
    "text_unknown_op": ("graph g {\n  %0:f32[2] = input x\n  %1:f32[2] = frob %0\n}\n", ["line 3", "frob"]),
    "text_cycle": ("graph g {\n  %0:f32[2] = exp %1\n  %1:f32[2] = exp %0\n}\n", ["cycle"]),
    "binary_garbage": (bytes(range(256)) * 4, []),
    "binary_png_header": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), []),
    "binary_valid_utf8": (b"\x00\x01\x02\x03graph\x7f\n", []),
    "binary_after_brace": (b"{\xff\xfe\x00\x81", ["JSON"]),
    "deeply_nested_text_literal": ("graph g {\n  %0:f32[1] = const " + "[" * 5000 + "1" + "]" * 5000 + "\n}\n",
                                   ["line 2"]),
    "huge_integer_in_text": ("graph g {\n  %0:f32[" + "9" * 5000 + "] = input x\n}\n", ["line 2"]),
}


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_show_bad_file_fails_cleanly(tmp_path, case):
    content, fragments = CASES[case]
    name = "nope.json" if content is None else "bad.ir"
    if callable(content):
        content = content(tmp_path)
    if isinstance(content, str):
        (tmp_path / name).write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    r = run(["show", name], cwd=tmp_path)
    assert_clean_failure(r, *fragments)
    assert r.returncode == 1
    assert r.stdout == "", "nothing should be printed on stdout for a file that cannot be read"


def test_show_directory_fails_cleanly(tmp_path):
    r = run(["show", "."], cwd=tmp_path)
    assert_clean_failure(r)


@pytest.mark.parametrize("args", [["frobnicate"], [], ["show"], ["show", "x.json", "--format", "svg"]],
                         ids=["unknown_subcommand", "no_subcommand", "show_without_file", "bad_format"])
def test_usage_errors(tmp_path, args):
    r = run(args, cwd=tmp_path)
    assert_clean_failure(r)
    assert "usage" in r.stderr.lower()


def test_demo_save_to_unwritable_place(tmp_path):
    r = run(["demo", "--save", "no/such/dir/g.json"], cwd=tmp_path)
    assert_clean_failure(r, "no/such/dir/g.json")
    assert r.returncode == 1


# ---------------------------------------------------------------- --version, compile --budget, profile


def test_version(tmp_path):
    r = run(["--version"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"graphc {gc.__version__}"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A forward graph and its gradient graph, saved."""
    d = tmp_path_factory.mktemp("budget")
    g = examples.two_layer(n=8, d_in=12, hidden=6, d_out=3)
    gc.save(g, d / "f.json")
    gc.save(gc.grad(g), d / "g.json")
    return d


def test_compile_under_a_budget_in_bytes_or_a_share(small):
    peak = gc.compile(gc.load(small / "g.json")).stats["peak_bytes"]
    for budget in (str(peak), "100%"):
        r = run(["compile", "g.json", "--budget", budget], cwd=small)
        assert r.returncode == 0, r.stderr
        assert f"remat 'Budget(bytes={peak})'" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--budget", "1"], ["least planned peak"]),
    (["--budget", "lots"], ["'lots'", "60%"]),
    (["--budget", "50%", "--remat", "sqrt"], ["not allowed with"]),
])
def test_compile_budget_errors_are_one_clean_line(small, args, words):
    assert_clean_failure(run(["compile", "g.json", *args], cwd=small), *words)


def test_profile_of_a_graph_without_a_backward_says_to_derive_one(small):
    r = run(["profile", "f.json", "--repeat", "1"], cwd=small)
    assert_clean_failure(r, "f.json: graph 'two_layer' has no backward", "nothing to trade", "graphc grad f.json")
    assert r.stdout == ""
