"""DESIGN's import rules: the core never imports slicer, qt, vtk, torch or monai (checked in a fresh
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
