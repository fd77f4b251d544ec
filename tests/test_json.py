"""The JSON form of the IR: exact round trips, versioning, precise errors, and a hostile-file fuzz.

Loading a JSON file must either give a well-formed graph or raise ``gc.GraphError`` whose message
starts with the JSON path of the fault ("$.nodes[3].shape[1]: ..."), and must never run, import
or evaluate anything named in the file.
"""

import builtins
import contextlib
import copy
import importlib
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import graphc as gc
from strategies import arguments, assert_same_array, assert_same_outputs, graphs, special_floats

# hypothesis's explain phase costs seconds per failure and adds little to these reports
NO_EXPLAIN = tuple(p for p in Phase if p != Phase.explain)

PROPERTY = settings(max_examples=100, deadline=None, phases=NO_EXPLAIN,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DEEP = 100_000  # nesting levels of the "[[[[...]]]]" bomb


# ---------------------------------------------------------------- round trips


@PROPERTY
@given(st.data())
def test_save_load_round_trips_exactly(data):
    g = data.draw(graphs(allow_empty=data.draw(st.booleans())))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.json")
        gc.save(g, path)
        with open(path, encoding="utf-8") as f:
            contents = f.read()
        loaded = gc.load(path)
    gc.verify(loaded)
    assert gc.to_json(loaded) == contents
    assert gc.to_text(loaded) == gc.to_text(g)
    args = data.draw(arguments(g, finite=data.draw(st.booleans())))
    assert_same_outputs(gc.evaluate(loaded, **args), gc.evaluate(g, **args))


@PROPERTY
@given(graphs())
def test_from_json_to_json_round_trips_exactly(g):
    text = gc.to_json(g)
    g2 = gc.from_json(text)
    assert gc.to_json(g2) == text
    assert gc.to_text(g2) == gc.to_text(g)
    assert gc.from_json(text.encode("utf-8")).nodes[-1].type == g.nodes[-1].type  # bytes load too
    for v, v2 in zip(g.nodes, g2.nodes):
        if v.op == "const":
            assert_same_array(v2.attrs["value"], v.attrs["value"], f"const %{v.id}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_float_constants_survive_json(dtype):
    values = np.array(special_floats(dtype), dtype=dtype)
    g = gc.Graph("c")
    g.output("c", g.const(values))
    g.output("s", g.const(values[3:4].reshape(())))  # -0.0 as a scalar
    text = gc.to_json(g)
    json.loads(text)  # strict JSON aside from our "nan"/"inf" strings: no bare NaN/Infinity
    assert "NaN" not in text and "Infinity" not in text
    g2 = gc.from_json(text)
    assert_same_array(g2.nodes[0].attrs["value"], values)
    assert_same_array(g2.nodes[1].attrs["value"], values[3:4].reshape(()))
    assert gc.to_json(g2) == text


def test_document_header_and_layout():
    g = example_graph()
    doc = json.loads(gc.to_json(g))
    assert doc["format"] == "graphc-ir" and doc["version"] == 1
    assert doc["name"] == "net"
    assert [n["id"] for n in doc["nodes"]] == list(range(len(g.nodes)))
    assert [o["name"] for o in doc["outputs"]] == list(g.outputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.json")
        gc.save(g, path)
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    assert '"format": "graphc-ir"' in raw and '"version": 1' in raw


def test_shuffled_nodes_load_in_dependency_order():
    g = example_graph()
    doc = json.loads(gc.to_json(g))
    doc["nodes"] = doc["nodes"][::-1]  # every use before its definition: acyclic, so it must load
    g2 = gc.from_json(json.dumps(doc))
    gc.verify(g2)
    args = {"x": np.arange(6, dtype="float32").reshape(2, 3), "w": np.ones((3, 4), "float32")}
    assert_same_outputs(gc.evaluate(g2, **args), gc.evaluate(g, **args))


# ---------------------------------------------------------------- versions and malformed documents


def example_graph():
    g = gc.Graph("net")
    x = g.input("x", (2, 3))
    w = g.param("w", (3, 4))
    h = gc.relu(x @ w)
    g.output("loss", gc.sum(h * 2.0, axis=1))
    g.output("h", h)
    g.output("cut", x[:, 1:])
    return g


EXAMPLE = json.loads(gc.to_json(example_graph()))


def node_index(op):
    return next(i for i, n in enumerate(EXAMPLE["nodes"]) if n["op"] == op)


IN, W, MATMUL, RELU, CONST, SUM, SLICE = (node_index(op) for op in
                                          ("input", "param", "matmul", "relu", "const", "sum", "slice"))


def edited(edit):
    doc = copy.deepcopy(EXAMPLE)
    edit(doc)
    return json.dumps(doc)


def setter(*path_and_value):
    *path, value = path_and_value

    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def deleter(*path):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


MALFORMED = {
    # document level
    "not json": ("{\"format\": ", "$:"),
    "root is a list": ("[]", "$:"),
    "missing version": (edited(deleter("version")), "$:"),
    "extra top-level key": (edited(setter("evil", "__import__('os')")), "$:"),
    "wrong format": (edited(setter("format", "onnx")), "$.format"),
    "version is a string": (edited(setter("version", "1")), "$.version"),
    "version is a float": (edited(setter("version", 1.0)), "$.version"),
    "version is a bool": (edited(setter("version", True)), "$.version"),
    "name not a string": (edited(setter("name", 7)), "$.name"),
    "name not a valid name": (edited(setter("name", "1 bad; rm -rf")), "$.name"),
    "nodes not a list": (edited(setter("nodes", {})), "$.nodes"),
    "outputs null": (edited(setter("outputs", None)), "$.outputs"),
    # node fields
    "node not an object": (edited(setter("nodes", 2, [])), "$.nodes[2]"),
    "node missing inputs": (edited(deleter("nodes", MATMUL, "inputs")), f"$.nodes[{MATMUL}]"),
    "node with an extra key": (edited(setter("nodes", MATMUL, "code", "x")), f"$.nodes[{MATMUL}]"),
    "id a string": (edited(setter("nodes", MATMUL, "id", "2")), f"$.nodes[{MATMUL}].id"),
    "op unknown": (edited(setter("nodes", RELU, "op", "os.system")), f"$.nodes[{RELU}].op"),
    "op is code": (edited(setter("nodes", RELU, "op", "__import__('os').system('x')")), f"$.nodes[{RELU}].op"),
    "op not a string": (edited(setter("nodes", RELU, "op", ["relu"])), f"$.nodes[{RELU}].op"),
    "dtype unknown": (edited(setter("nodes", RELU, "dtype", "float16")), f"$.nodes[{RELU}].dtype"),
    "shape entry a string": (edited(setter("nodes", IN, "shape", 1, "3")), f"$.nodes[{IN}].shape[1]"),
    "shape entry a float": (edited(setter("nodes", IN, "shape", 1, 3.0)), f"$.nodes[{IN}].shape[1]"),
    "shape entry a bool": (edited(setter("nodes", IN, "shape", 1, True)), f"$.nodes[{IN}].shape[1]"),
    "shape an object": (edited(setter("nodes", IN, "shape", {})), f"$.nodes[{IN}].shape"),
    "shape entry negative": (edited(setter("nodes", IN, "shape", 1, -1)), f"$.nodes[{IN}].shape"),
    "shape entry huge": (edited(setter("nodes", IN, "shape", 1, 10**30)), f"$.nodes[{IN}].shape"),
    "inputs a string": (edited(setter("nodes", MATMUL, "inputs", "0 1")), f"$.nodes[{MATMUL}].inputs"),
    "inputs entry a float": (edited(setter("nodes", MATMUL, "inputs", 0, 0.0)), f"$.nodes[{MATMUL}].inputs[0]"),
    "dangling operand": (edited(setter("nodes", MATMUL, "inputs", 0, 99)), f"$.nodes[{MATMUL}]"),
    "wrong operand count": (edited(setter("nodes", RELU, "inputs", [])), f"$.nodes[{RELU}]"),
    "declared shape wrong": (edited(setter("nodes", RELU, "shape", [2, 5])), f"$.nodes[{RELU}]"),
    "declared dtype wrong": (edited(setter("nodes", RELU, "dtype", "float64")), f"$.nodes[{RELU}]"),
    "duplicate id": (edited(setter("nodes", W, "id", EXAMPLE["nodes"][IN]["id"])), f"$.nodes[{W}]"),
    "cycle": (edited(setter("nodes", MATMUL, "inputs", [EXAMPLE["nodes"][RELU]["id"], 1])), "$.nodes["),
    # attributes
    "attrs a list": (edited(setter("nodes", SUM, "attrs", [])), f"$.nodes[{SUM}].attrs"),
    "attrs with an extra key": (edited(setter("nodes", SUM, "attrs", "evil", "os.system")), f"$.nodes[{SUM}].attrs"),
    "attrs missing a key": (edited(deleter("nodes", SUM, "attrs", "keepdims")), f"$.nodes[{SUM}].attrs"),
    "axes a string": (edited(setter("nodes", SUM, "attrs", "axes", "1")), f"$.nodes[{SUM}].attrs.axes"),
    "axes entry a string": (edited(setter("nodes", SUM, "attrs", "axes", 0, "1")), f"$.nodes[{SUM}].attrs.axes[0]"),
    "axes out of range": (edited(setter("nodes", SUM, "attrs", "axes", [7])), f"$.nodes[{SUM}]"),
    "keepdims an int": (edited(setter("nodes", SUM, "attrs", "keepdims", 0)), f"$.nodes[{SUM}].attrs.keepdims"),
    "slice bound huge": (edited(setter("nodes", SLICE, "attrs", "stops", 1, 10**30)), f"$.nodes[{SLICE}]"),
    "input name a number": (edited(setter("nodes", IN, "attrs", "name", 3)), f"$.nodes[{IN}].attrs.name"),
    "input name is code": (edited(setter("nodes", IN, "attrs", "name", "__import__('os')")), f"$.nodes[{IN}]"),
    "duplicate input name": (edited(setter("nodes", W, "attrs", "name", "x")), f"$.nodes[{W}]"),
    # constants
    "const value not a list": (edited(setter("nodes", CONST, "attrs", "value", 2.0)), f"$.nodes[{CONST}].attrs.value"),
    "const value a string": (edited(setter("nodes", CONST, "attrs", "value", ["2.0"])),
                             f"$.nodes[{CONST}].attrs.value[0]"),
    "const value nested": (edited(setter("nodes", CONST, "attrs", "value", [[2.0]])),
                           f"$.nodes[{CONST}].attrs.value[0]"),
    "const value count": (edited(setter("nodes", CONST, "attrs", "value", [1.0, 2.0])),
                          f"$.nodes[{CONST}].attrs.value"),
    "const value a bool": (edited(setter("nodes", CONST, "attrs", "value", [True])), f"$.nodes[{CONST}].attrs.value"),
    "const value too big": (edited(setter("nodes", CONST, "attrs", "value", [10**400])),
                            f"$.nodes[{CONST}].attrs.value"),
    # outputs
    "output not an object": (edited(setter("outputs", 0, [])), "$.outputs[0]"),
    "output value a string": (edited(setter("outputs", 0, "value", "5")), "$.outputs[0].value"),
    "output value null": (edited(setter("outputs", 0, "value", None)), "$.outputs[0].value"),
    "output value dangling": (edited(setter("outputs", 0, "value", 99)), "$.outputs[0]"),
    "output name a number": (edited(setter("outputs", 0, "name", 5)), "$.outputs[0].name"),
    "output name invalid": (edited(setter("outputs", 0, "name", "a b")), "$.outputs[0]"),
    "duplicate output name": (edited(setter("outputs", 1, "name", "loss")), "$.outputs[1]"),
    # bombs
    "deep list": ("[" * DEEP + "]" * DEEP, "$:"),
    "deep object": ('{"a":' * DEEP + "1" + "}" * DEEP, "$:"),
    "deep value in a node": (edited(setter("nodes", IN, "shape", "DEEP")).replace('"DEEP"', "[" * DEEP + "]" * DEEP),
                             "$:"),
    "5000-digit int": (edited(setter("version", "BIG")).replace('"BIG"', "9" * 5000), "$:"),
    "invalid utf-8": (gc.to_json(example_graph()).encode()[:40] + b"\xff\xfe\xfd" + b"x" * 10, "$:"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_documents_give_graph_error_with_json_path(case):
    text, path = MALFORMED[case]
    with pytest.raises(gc.GraphError) as info:
        gc.from_json(text)
    assert str(info.value).startswith(path), str(info.value)


@pytest.mark.parametrize("version", [0, 2, 99, -1, 10**30])
def test_unsupported_version_is_named(version):
    with pytest.raises(gc.GraphError, match=r"^\$\.version: .*version"):
        gc.from_json(edited(setter("version", version)))


def test_load_names_the_file_and_the_json_path():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bad.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(MALFORMED["shape entry a string"][0])
        with pytest.raises(gc.GraphError) as info:
            gc.load(path)
    assert path in str(info.value) and f"$.nodes[{IN}].shape[1]" in str(info.value)


@pytest.mark.parametrize("bad", [None, 3, 1.5, ["{}"], {"format": "graphc-ir"}])
def test_from_json_of_a_non_text_object_is_graph_error(bad):
    with pytest.raises(gc.GraphError):
        gc.from_json(bad)


# ---------------------------------------------------------------- the fuzz


HOSTILE_STRINGS = ["__import__('os').system('x')", "os.system", "eval", "exec", "__builtins__",
                   "subprocess.Popen", "builtins.eval", "pickle.loads", "numpy.load", "importlib.import_module",
                   "__class__.__mro__", "lambda: 0", "${jndi:x}", "", " ", "relu ", "Sum", "nan", "x", "%3"]
HOSTILE_VALUES = [None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 0.5, -0.0, 1e308,
                  [], [1, [2]], {}, {"a": {"b": [None]}}, "float16", "int64", "DEEP"] + HOSTILE_STRINGS
KNOWN_OPS = sorted(gc.OPS)
DEEP_TOKEN = '"DEEP"'  # replaced by a DEEP-level "[[[...]]]" after dumping


def _all_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _all_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _all_paths(v, prefix + (i,))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def mutate(data, text: str) -> bytes:
    """Apply 1-3 random mutations, drawn with ``data``, to the JSON document ``text``."""
    doc = json.loads(text)
    raw_edits = []
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        kind = data.draw(st.sampled_from(["replace", "replace", "delete_key", "dup_node", "remove_node", "op_known",
                                          "op_hostile", "int_tweak", "int_tweak", "string", "move_node", "byte_flip",
                                          "truncate", "insert"]),
                         label="kind")
        nodes = doc.get("nodes") if isinstance(doc, dict) else None
        node_list = nodes if isinstance(nodes, list) and nodes else None
        if kind == "replace":
            paths = list(_all_paths(doc))
            path = data.draw(st.sampled_from(paths), label="path")
            leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
            value = data.draw(st.one_of(st.sampled_from(HOSTILE_VALUES), st.recursive(
                leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                max_leaves=5)), label="value")
            doc = _set(doc, path, value)
        elif kind == "delete_key":
            paths = [p for p in _all_paths(doc) if isinstance(_get(doc, p), dict) and _get(doc, p)]
            if paths:
                target = _get(doc, data.draw(st.sampled_from(paths), label="dict"))
                del target[data.draw(st.sampled_from(sorted(target)), label="key")]
        elif kind in ("dup_node", "remove_node", "move_node") and node_list:
            i = data.draw(st.integers(0, len(node_list) - 1), label="node")
            j = data.draw(st.integers(0, len(node_list)), label="to")
            if kind == "dup_node":
                node_list.insert(j, copy.deepcopy(node_list[i]))
            elif kind == "remove_node":
                del node_list[i]
            else:
                node_list.insert(j, node_list.pop(i))
        elif kind in ("op_known", "op_hostile") and node_list:
            node = node_list[data.draw(st.integers(0, len(node_list) - 1), label="node")]
            if isinstance(node, dict):
                names = KNOWN_OPS if kind == "op_known" else HOSTILE_STRINGS
                node["op"] = data.draw(st.sampled_from(names), label="op")
        elif kind == "int_tweak":
            paths = [p for p in _all_paths(doc) if type(_get(doc, p)) is int]
            if paths:
                path = data.draw(st.sampled_from(paths), label="int")
                value = data.draw(st.one_of(
                    st.sampled_from([-1, 0, 2**31, 2**62, 2**63, -(2**63) - 1, 10**30, -(10**30), 10**400]),
                    st.integers(-3, 3).map(lambda d, old=_get(doc, path): old + d)), label="new_int")
                doc = _set(doc, path, value)
        elif kind == "string":
            paths = [p for p in _all_paths(doc) if isinstance(_get(doc, p), str)]
            if paths:
                path = data.draw(st.sampled_from(paths), label="str")
                strings = HOSTILE_STRINGS + KNOWN_OPS + ["float16", "f32", "bool"]
                doc = _set(doc, path, data.draw(st.sampled_from(strings), label="new_str"))
        else:
            raw_edits.append(kind)
    raw = json.dumps(doc).replace(DEEP_TOKEN, "[" * DEEP + "]" * DEEP).encode("utf-8")
    for kind in raw_edits:
        if not raw:
            break
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        if kind == "byte_flip":
            raw = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[pos + 1:]
        elif kind == "truncate":
            raw = raw[:pos]
        else:
            raw = raw[:pos] + data.draw(st.sampled_from([b"]", b"}", b",", b"\x00", b"\xff", b'"', b"NaN", b"1e999",
                                                         b"-Infinity", b"[" * 2000]), label="junk") + raw[pos:]
    return raw


class ForbiddenCall(Exception):
    """Raised by the guards; deliberately not a GraphError, so it cannot pass for one."""


@contextlib.contextmanager
def nothing_runs():
    """Watch the block: os.system/os.popen/subprocess.Popen/pickle.loads/importlib.import_module
    are forbidden outright; eval/exec/compile still work (networkx compiles its own decorator
    wrappers on the fly) but every source they get is recorded, as is every absolute import."""
    forbidden, sources, imports = [], [], []
    real = {name: getattr(builtins, name) for name in ("eval", "exec", "compile", "__import__")}

    def forbid(name):
        def guard(*args, **kwargs):
            forbidden.append((name, args))
            raise ForbiddenCall(f"{name}{args!r}")
        return guard

    def recording(name):
        def wrapper(source, *args, **kwargs):
            sources.append((name, source if isinstance(source, (str, bytes)) else repr(source)))
            return real[name](source, *args, **kwargs)
        return wrapper

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:  # absolute imports; relative ones (graphc's own modules) resolve elsewhere
            imports.append(name)
        return real["__import__"](name, globals, locals, fromlist, level)

    patches = [(os, "system"), (os, "popen"), (subprocess, "Popen"), (pickle, "loads"), (importlib, "import_module")]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in patches]
    modules_before = set(sys.modules)
    try:
        for obj, attr in patches:
            setattr(obj, attr, forbid(f"{obj.__name__}.{attr}"))
        for name in ("eval", "exec", "compile"):
            setattr(builtins, name, recording(name))
        builtins.__import__ = recording_import
        yield Watch(forbidden, sources, imports, modules_before)
    finally:
        for name, fn in real.items():
            setattr(builtins, name, fn)
        for obj, attr, value in saved:
            setattr(obj, attr, value)


class Watch:
    def __init__(self, forbidden, sources, imports, modules_before):
        self.forbidden, self.sources, self.imports, self.modules_before = forbidden, sources, imports, modules_before

    def check(self, payload_strings=()):
        """Nothing forbidden ran, nothing new was imported, and no string of the payload reached
        eval/exec/compile or an import."""
        assert self.forbidden == [], f"loading called {self.forbidden}"
        new_modules = set(sys.modules) - self.modules_before
        assert not new_modules, f"loading imported {sorted(new_modules)}"
        assert not [n for n in self.imports if n not in self.modules_before], f"loading imported {self.imports}"
        tainted = [s for s in payload_strings if len(s) > 3]
        for name, source in self.sources:
            text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
            hits = [s for s in tainted if s in text]
            assert not hits, f"{name} got file content {hits}: {text[:200]!r}"
        hits = [n for n in self.imports if any(s in n for s in tainted)]
        assert not hits, f"imported names from the file: {hits}"


def guarded_from_json(payload):
    """from_json(payload) under ``nothing_runs``; returns the graph or the exception it raised."""
    with nothing_runs() as watch:
        try:
            result = gc.from_json(payload)
        except BaseException as e:  # noqa: BLE001 - judged by the caller
            result = e
    watch.check(HOSTILE_STRINGS)
    return result


@pytest.fixture(scope="module", autouse=True)
def warm_up_loader():
    """Run every loader path once so that lazily imported helpers (networkx, the codecs json
    picks for UTF-16/32 input) are loaded before the fuzz watches imports."""
    for encoding in ("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        with contextlib.suppress(gc.GraphError):
            gc.from_json("[]".encode(encoding))
    for text, _ in MALFORMED.values():
        with contextlib.suppress(Exception):
            gc.from_json(text)
    gc.from_json(gc.to_json(example_graph()))


def check_loaded_or_graph_error(payload):
    result = guarded_from_json(payload)
    if isinstance(result, gc.Graph):
        gc.verify(result)
        again = gc.to_json(result)
        assert gc.to_json(gc.from_json(again)) == again
        assert gc.to_text(gc.from_text(gc.to_text(result))) == gc.to_text(result)
        return result
    assert type(result) is gc.GraphError, f"{type(result).__name__}: {result}"
    assert str(result).startswith("$"), f"GraphError without a JSON path: {result}"
    return result


@settings(max_examples=300, deadline=None, phases=NO_EXPLAIN,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_fuzzed_documents_load_or_raise_graph_error_and_never_execute(data):
    g = data.draw(graphs(max_ops=8), label="graph")
    payload = mutate(data, gc.to_json(g))
    if data.draw(st.booleans(), label="as_str"):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
    check_loaded_or_graph_error(payload)


def test_hostile_op_names_are_rejected_without_running_anything():
    for op in HOSTILE_STRINGS:
        if op in gc.OPS:
            continue
        result = guarded_from_json(edited(setter("nodes", RELU, "op", op)))
        assert type(result) is gc.GraphError and str(result).startswith(f"$.nodes[{RELU}].op"), repr(result)


def test_guard_catches_execution():
    """The guard itself works: it sees file content reach eval, forbidden calls, and imports."""
    with nothing_runs() as watch:
        builtins.eval("len('os.system')")
    with pytest.raises(AssertionError, match="eval got file content"):
        watch.check(HOSTILE_STRINGS)
    with nothing_runs() as watch:
        with contextlib.suppress(ForbiddenCall):
            os.system("true")
    with pytest.raises(AssertionError, match="os.system"):
        watch.check()
    with nothing_runs() as watch:
        import json as _json  # noqa: F401 - an import the guard must see
    assert "json" in watch.imports
    watch.check(HOSTILE_STRINGS)  # an import of a loaded module is no fault
