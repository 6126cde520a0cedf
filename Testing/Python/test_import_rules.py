"""The import rules of docs/architecture.md: the core never imports slicer, qt, vtk, torch or monai (checked in a fresh
interpreter after importing every core module), and GliomaForecastLib never imports qt."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "GliomaForecast" / "gliomaforecast"
FORBIDDEN = ("slicer", "qt", "vtk", "torch", "monai", "ctk", "gliomaforecast_training", "GliomaForecastLib")


def test_core_modules_import_nothing_forbidden() -> None:
    modules = sorted("gliomaforecast." + ".".join(p.relative_to(CORE).with_suffix("").parts)
                     for p in CORE.rglob("*.py") if p.name not in ("__main__.py",))
    modules = [m.removesuffix(".__init__") for m in modules]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
            "print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "", f"the core pulled in: {proc.stdout.strip()}"
    assert len(modules) > 20


def test_slicer_lib_never_imports_qt() -> None:
    for path in (REPO / "GliomaForecast" / "GliomaForecastLib").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(n.split(".")[0] in ("qt", "ctk", "PythonQt") for n in names), path


def _core_imports() -> dict[str, set[str]]:
    """Module -> the core modules it imports at module level (relative and absolute imports resolved; imports
    inside functions are deliberate late imports and do not form load-time cycles)."""
    graph: dict[str, set[str]] = {}
    modules = {"gliomaforecast." + ".".join(p.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__"):
               p for p in CORE.rglob("*.py")}
    modules = {m.removesuffix("."): p for m, p in modules.items()}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_core_has_no_import_cycle() -> None:
    graph = _core_imports()
    assert "gliomaforecast.forecasters.base" in graph and graph["gliomaforecast.forecast"]
    assert _cycle(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
