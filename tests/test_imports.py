"""smart/ has no import cycles (an AST graph of every import statement, function-level ones
included), each module imports on its own in a fresh interpreter, and declaring and validating a
config imports no torch (a study validates its runs before anything heavy starts)."""
import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smart_modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of smart/."""
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "smart")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    modules = smart_modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_smart_has_no_import_cycles():
    graph = import_graph()
    assert {"smart.config", "smart.data.sources", "smart.data.imagenet64"} <= set(graph)
    assert "smart.data.sources" in graph["smart.data.imagenet64"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.slow
def test_each_module_imports_alone():
    env = {**os.environ, "PYTHONPATH": ROOT}

    def load(name):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env,
                              timeout=300)
        return name, proc.returncode, proc.stderr[-1500:]

    with ThreadPoolExecutor(2) as pool:
        failed = [(n, err) for n, rc, err in pool.map(load, sorted(smart_modules())) if rc != 0]
    assert not failed, failed


def test_validating_configs_imports_no_torch():
    script = """
import sys
from smart.config import RunConfig, keys_markdown
from smart.metrics import reported_metrics
cfg = RunConfig.from_dict({"data": {"kind": "digits", "conditional": True}, "generator": {"arch": "aurora"},
                           "discriminator": {"arch": "stylegan2"}, "score": {"kind": "diffusers", "path": "x"},
                           "eval": {"metrics": ["fid", "grad_norms"]}})
assert "loss_aux" in reported_metrics(cfg) and keys_markdown()
print(sorted(m for m in ("torch", "diffusers", "torch_fidelity", "ray", "mlflow") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
