"""The packages' import graphs, read from the source (every import statement, lazy ones inside
functions included): no module of smart/ or tuning/ imports itself back through others, and smart/
never imports tuning, Ray or MLflow."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules(package: str) -> dict[str, str]:
    """dotted module name -> file, for every module of `package`."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(dirpath, name), ROOT)[:-3].split(os.sep)
                out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(dirpath, name)
    return out


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every name an import statement of `module` loads: `import a.b` -> a.b, `from a import b` ->
    a and a.b (a.b is kept only if it is a module), relative imports resolved."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package that it imports."""
    modules = _modules(package)
    graph = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        graph[name] = {m for m in _imported(tree, name, path.endswith("__init__.py")) if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert cycles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_relative_imports_are_resolved():
    tree = ast.parse("from . import sources\nfrom .toy import ring\nfrom .. import config\n")
    assert {"smart.data.sources", "smart.data.toy", "smart.config"} <= _imported(tree, "smart.data.imagenet64", False)
    assert "smart.data.sources" in _imported(ast.parse("from . import sources"), "smart.data", True)


@pytest.mark.parametrize("package", ["smart", "tuning"])
def test_no_import_cycles(package):
    graph = import_graph(package)
    if package == "smart":  # the graph sees absolute imports across subpackages
        assert "smart.data.sources" in graph["smart.data.imagenet64"]
    assert cycles(graph) == []


def test_smart_imports_no_study_layer():
    for name, path in _modules("smart").items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        roots = {m.split(".")[0] for m in _imported(tree, name, path.endswith("__init__.py"))}
        assert not roots & {"tuning", "ray", "mlflow"}, name
