"""The static-check gate of the core (issue 28): ruff (lint + format check) and mypy are configured in
pyproject.toml, installed by the ``test`` extra and run by the Makefile's ``test`` target (and so by CI, whose
``.ci/run`` runs ``make test``) before pytest. A static check: nothing here runs ruff or mypy, so the gate cannot
disappear silently."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport, when installed
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
CORE = "GliomaForecast/gliomaforecast"
RULES = {"E", "F", "W", "I", "B", "UP"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _recipe(target: str) -> list[str]:
    """The command lines of ``target``'s rule in the Makefile (tab-indented lines after ``target:``)."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}\s*:(?!=)", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_ruff_is_configured_for_the_core() -> None:
    ruff = _pyproject()["tool"]["ruff"]
    assert ruff["line-length"] == 120
    assert ruff["target-version"] == "py310"
    assert RULES <= set(ruff["lint"]["select"])
    assert not set(ruff["lint"].get("ignore", [])) & RULES, "a whole rule family is switched off"
    excluded = [*ruff.get("exclude", []), *ruff.get("extend-exclude", [])]
    assert not any(CORE.startswith(e.strip("/")) or "gliomaforecast" in e for e in excluded), excluded


def test_mypy_is_configured_for_the_core() -> None:
    project = _pyproject()
    mypy = project["tool"]["mypy"]
    assert CORE in mypy["files"]
    assert mypy["python_version"] == project["project"]["requires-python"].removeprefix(">=")
    assert mypy["check_untyped_defs"] is True
    assert "ignore-without-code" in mypy["enable_error_code"]
    assert mypy.get("ignore_missing_imports") is not True, "missing imports may be ignored per package only"
    assert mypy.get("follow_imports", "normal") == "normal"
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not override.get("ignore_errors"), f"errors ignored in {modules}"
        assert not any(m.split(".")[0] == "gliomaforecast" for m in modules), f"the core exempted: {modules}"


def test_the_test_extra_installs_ruff_and_mypy() -> None:
    extra = _pyproject()["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in extra}
    assert {"ruff", "mypy"} <= names


def test_make_test_runs_ruff_and_mypy_before_pytest() -> None:
    """ruff runs before pytest; mypy starts before pytest (in the background, beside it) and its failure fails the
    target after pytest has run."""
    recipe = _recipe("test")
    commands = [" ".join(line.split()) for line in recipe]
    checks = [
        "$(VENV)/bin/ruff check " + CORE,
        "$(VENV)/bin/ruff format --check " + CORE,
    ]
    pytest_at = next(i for i, c in enumerate(commands) if "pytest" in c)
    for check in checks:
        at = [i for i, c in enumerate(commands) if c == check or c.startswith(check + " ")]
        assert at, f"`make test` no longer runs `{check}`: {recipe}"
        assert at[0] < pytest_at, f"`{check}` must run before pytest"
    script = " ".join(commands[pytest_at - 1 :])
    assert script.startswith("$(VENV)/bin/mypy ") and script.index("mypy") < script.index("pytest"), recipe
    assert "wait $$mypy; types=$$?" in script and "exit $$types" in script, "a mypy failure must fail `make test`"
    assert "tests=$$?" in script and script.rstrip().endswith("exit $$tests"), "a pytest failure must fail it"
    for line in recipe:  # no failure swallowed: a '-' prefix or '|| true' would let the target pass anyway
        assert not line.startswith(("-", "@-")) and "|| true" not in line and "|| :" not in line, line


def test_ci_runs_make_test() -> None:
    run = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test\s*$", run, re.MULTILINE)
    assert "set -e" in run
