"""The rules of the house (ARCHITECTURE.md), checked on the source instead of remembered.

1. ``gate/runtime`` is device-portable: its modules import only numpy, onnxruntime, the standard library and
   each other (the package is copied as a whole to a remote device, which has nothing else).
2. The import graph of ``gate/``, ``exporters/`` and ``hardware_profiles/`` has no circle (every import counts,
   also those inside functions).
3. The core never imports the command line: only ``gate/cli`` imports ``gate.cli``.
4. ``exporters`` (the artifact side) imports from ``gate`` only the device-portable layer ``gate.runtime``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gate", "exporters", "hardware_profiles")
PORTABLE_THIRD_PARTY = {"numpy", "onnxruntime"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(path: Path, name: str) -> set[str]:
    """Every module named by an import statement in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # "from pkg import module"
    return out


def _internal_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for imp in _imports(path, name):
            # the longest known module that the import names (a name imported from a module maps to the module)
            while imp and imp not in mods:
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                targets.add(imp)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_runtime_imports_only_numpy_onnxruntime_and_the_standard_library():
    bad = []
    for name, path in _modules().items():
        if not name.startswith("gate.runtime"):
            continue
        for imp in _imports(path, name):
            top = imp.split(".")[0]
            if top in sys.stdlib_module_names or top in PORTABLE_THIRD_PARTY or top == "__future__":
                continue
            if imp == "gate" or imp.startswith("gate.runtime"):
                continue
            bad.append(f"{path.relative_to(REPO)} imports {imp}")
    assert not bad, bad


def test_import_graph_has_no_circle():
    assert _cycles(_internal_graph()) == []


def test_core_does_not_import_the_cli():
    bad = [f"{name} -> {t}" for name, targets in _internal_graph().items() if not name.startswith("gate.cli")
           for t in targets if t.startswith("gate.cli")]
    assert not bad, bad


def test_exporters_import_only_the_runtime_layer_of_gate():
    bad = [f"{name} -> {t}" for name, targets in _internal_graph().items() if name.startswith("exporters")
           for t in targets if t.startswith("gate") and not t.startswith("gate.runtime") and t != "gate"]
    assert not bad, bad


@pytest.mark.parametrize("rule", ["cycle", "portable", "cli"])
def test_the_rules_catch_a_violation(rule):
    """The checks above can fail: each is fed a graph or a module that breaks its rule."""
    if rule == "cycle":
        assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    elif rule == "portable":
        src = REPO / "gate" / "runtime" / "errors.py"
        assert "torch" not in _imports(src, "gate.runtime.errors")
        tree_imports = _imports(Path(__file__), "tests.test_architecture")
        assert "pytest" in tree_imports and "pytest" not in sys.stdlib_module_names
    else:
        graph = {"gate.pipeline": {"gate.cli.device"}, "gate.cli.main": {"gate.pipeline"}}
        bad = [n for n, ts in graph.items() if not n.startswith("gate.cli") for t in ts if t.startswith("gate.cli")]
        assert bad == ["gate.pipeline"]
