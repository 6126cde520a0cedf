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
    """Module -> the core modules it imports anywhere: at module level, inside functions (late imports) and under
    ``TYPE_CHECKING`` (relative and absolute imports resolved). A cycle hidden in a function is still a cycle."""
    graph: dict[str, set[str]] = {}
    modules = {"gliomaforecast." + ".".join(p.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__"):
               p for p in CORE.rglob("*.py")}
    modules = {m.removesuffix("."): p for m, p in modules.items()}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
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


# The core's layers (docs/architecture.md): a module imports only modules of its own layer or below.
LAYERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("gliomaforecast", "errors", "defaults", "checks", "geometry", "resources")),
    (1, ("io", "sdf", "models", "model_registry_writer", "scheduling")),
    (2, ("targets", "growth", "deformation", "diffusion", "preparation", "input_shift")),
    (3, ("forecasters",)),
    (4, ("forecast", "plausibility")),
    (5, ("output", "evaluation", "dicom")),
    (6, ("commands", "cli", "__main__")),
)


def layer_of(module: str) -> int:
    """The layer of a core module (by its first name under ``gliomaforecast``)."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "gliomaforecast"
    for layer, names in LAYERS:
        if head in names:
            return layer
    raise KeyError(f"{module} is in no layer of docs/architecture.md")


def test_core_imports_follow_the_layers() -> None:
    graph = _core_imports()
    upward = sorted(f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
                    for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m))
    assert upward == []


def test_layer_rule_catches_an_upward_import() -> None:
    assert layer_of("gliomaforecast.targets.ctv") < layer_of("gliomaforecast.forecasters.base")
    assert layer_of("gliomaforecast.io.case") < layer_of("gliomaforecast.forecast") < layer_of("gliomaforecast.cli")


def test_no_core_folder_holds_more_than_15_modules() -> None:
    for folder in [CORE, *(p for p in CORE.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 15, f"{folder}: {len(modules)} modules"


MAX_FUNCTION_LINES = 60


def test_no_core_function_is_longer_than_60_lines() -> None:
    """Issue 28: every function of the core (methods and nested functions included) fits in 60 lines, counted from
    its ``def`` (decorators left out) to its last line, docstring included."""
    long = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines:\n" + "\n".join(long)
