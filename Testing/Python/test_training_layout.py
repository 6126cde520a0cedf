"""The training package's layout (docs/architecture.md): one package per model family, ``cohort`` for the virtual
cohort and ``common`` for what the families share; every package is installed and says what lives there; a family
imports the core and ``common`` but never another family; ``common`` imports no family; the frozen cohort
generator imports neither torch nor the training code around it (an AST test over every import, at module level
and inside functions)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport, when installed
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "training" / "gliomaforecast_training"
FAMILIES = ("evolution", "multitask", "guided", "latent", "recurrence_unet")
PACKAGES = ("cohort", "common", "commands", *FAMILIES)


def _imports(path: Path, package: str) -> set[str]:
    """Every module name ``path`` imports (relative imports resolved against ``package``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def _training_parts(names: set[str]) -> set[str]:
    """The training sub-packages (or top-level modules) among imported module names."""
    return {n.split(".")[1] for n in names if n.startswith("gliomaforecast_training.") and n.count(".") >= 1}


def _package_imports(sub: str) -> dict[Path, set[str]]:
    folder = TRAINING / sub
    return {p: _imports(p, f"gliomaforecast_training.{sub}") for p in sorted(folder.glob("*.py"))}


def test_every_package_is_installed_and_has_a_docstring() -> None:
    found = sorted(p.parent.name for p in TRAINING.glob("*/__init__.py"))
    assert found == sorted(PACKAGES)
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    installed = set(config["tool"]["setuptools"]["packages"])
    assert {f"gliomaforecast_training.{p}" for p in PACKAGES} <= installed
    for name in PACKAGES:
        doc = ast.get_docstring(ast.parse((TRAINING / name / "__init__.py").read_text()))
        assert doc and len(doc) > 40, name
    loose = sorted(p.name for p in TRAINING.glob("*.py"))
    assert loose == ["__init__.py", "cli.py"]


def test_a_family_never_imports_another() -> None:
    for family in FAMILIES:
        for path, names in _package_imports(family).items():
            others = _training_parts(names) - {family, "common"}
            assert not others, f"{path.relative_to(REPO)} imports {sorted(others)}"


def test_common_imports_no_family_and_the_cohort_stays_apart() -> None:
    for path, names in _package_imports("common").items():
        assert _training_parts(names) <= {"common"}, path
    for path, names in _package_imports("cohort").items():
        assert _training_parts(names) <= {"cohort"}, path
        assert not any(n.split(".")[0] in ("torch", "monai", "onnxruntime") for n in names), path
