"""The package's import graph: no cycles, no function-local imports of graphc modules (which
hide cycles), and no arrow from a lower layer to a higher one:
errors <- ir <- passes <- codegen <- runtime <- the driver (compiler, report, profile, check) <- cli.
"""

import ast
import pathlib

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parent.parent / "graphc"
LAYERS = {"errors": 0, "version": 0, "ir": 1, "examples": 1, "passes": 2, "codegen": 3, "runtime": 4,
          "compiler": 5, "report": 5, "check": 5, "profile": 6, "cli": 7, "__init__": 8, "__main__": 9}


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
    """(imported graphc module, whether the import is inside a function) of each import."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            target = target if node.module else None  # `from . import x` imports x, not the package
        elif isinstance(node, ast.Import):
            target, names = None, [a.name for a in node.names]
        else:
            continue
        for name in names + ([target] if target else []):
            if name.split(".")[0] == "graphc":
                yield name, id(node) in local


def _graph():
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    deps, local = nx.DiGraph(), []
    deps.add_nodes_from(files)
    for module, path in files.items():
        for name, in_function in _imports(path):
            while name not in files and "." in name:  # `from .x import y`: y is a name in module x
                name = name.rsplit(".", 1)[0]
            if name in files and name != module and not (path.name == "__init__.py" and name == "graphc"):
                deps.add_edge(module, name)
                if in_function:
                    local.append((module, name))
    return deps, local


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_every_module_has_a_layer():
    deps, _ = _graph()
    assert {m.split(".")[1] for m in deps if "." in m} <= set(LAYERS)


def test_the_import_graph_has_no_cycle():
    deps, _ = _graph()
    package_inits = [m for m in deps if (ROOT.parent / m.replace(".", "/") / "__init__.py").exists()]
    # a package's __init__ importing its own modules is not a cycle of the code
    code = deps.copy()
    code.remove_edges_from([(m, n) for m, n in deps.edges if m in package_inits and n.startswith(m + ".")])
    assert list(nx.simple_cycles(code)) == []


def test_no_graphc_import_hides_in_a_function():
    _, local = _graph()
    assert local == []


def test_no_layer_imports_a_layer_above_it():
    deps, _ = _graph()
    upward = [(m, n) for m, n in deps.edges if _layer(n) > _layer(m)]
    assert upward == []


def test_the_checker_sees_the_arrows_it_judges():
    """The walk finds known imports (so an empty list above means something)."""
    deps, _ = _graph()
    assert deps.has_edge("graphc.compiler", "graphc.passes.pipeline")
    assert deps.has_edge("graphc.passes.pipeline", "graphc.passes.remat")
    assert deps.has_edge("graphc.codegen.numba_cuda", "graphc.codegen.kernel")
    assert deps.has_edge("graphc.runtime.executable", "graphc.codegen.cache")
