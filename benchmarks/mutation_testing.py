"""Mutation testing of the core's numerics with mutmut (issue 34): how many wrong implementations the suite catches.

For each group below, mutmut 3 rewrites every function of the group's modules into mutants (an operator, a
constant, a comparison, an argument changed...) and runs the tests that reach the function against each; a mutant
that no test fails "survives". Runs in a scratch copy of the repository (the package under ``src/`` there, so that
the mutated copy is the one imported), one mutmut run per group, and writes
benchmarks/results/mutation/<group>.json (every mutant's status) and benchmarks/results/mutation.md (the score per
module, the survivors with their diff, and the equivalent mutants listed in ``EQUIVALENT`` with a one-line reason).

    make mutation                                   # every group
    .venv/bin/python benchmarks/mutation_testing.py [--group sdf ...] [--jobs 2]

Score = killed / (mutants - equivalent); a mutant that times out counts as killed (mutmut's convention: the tests
stopped it), one that no test reaches counts as surviving.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "GliomaForecast" / "gliomaforecast"
RESULTS = ROOT / "benchmarks" / "results"
MUTMUT = "mutmut==3.3.1"

# group -> (modules under gliomaforecast/, the tests that exercise them)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sdf": (("sdf.py",), ("test_sdf.py", "test_cli_sdf.py")),
    "ctv": (("targets/ctv.py", "targets/volumes.py"), ("test_ctv.py", "test_target_volumes.py")),
    "standard_plan": (("targets/standard_plan.py",), ("test_standard_plan.py",)),
    "metrics": (("evaluation/__init__.py", "evaluation/probability.py"), ("test_evaluation.py",)),
    "growth": (("growth/model.py", "growth/fit.py"), ("test_growth.py", "test_growth_prior.py")),
    "protocols": (("evaluation/protocols.py",), ("test_evaluation_protocols.py",)),
    "nifti_checks": (("io/headers.py",), ("test_reliability_headers.py", "test_geometry_io.py")),
}

# mutant name -> why it cannot change behaviour (reviewed by hand; see benchmarks/results/mutation.md)
EQUIVALENT: dict[str, str] = {}


def _scratch(work: Path, group: str) -> Path:
    """A copy of the repository's tests and resources with the package under src/, and mutmut's configuration for
    ``group``: only its modules are mutated, the rest of the package is copied as it is."""
    modules, tests = GROUPS[group]
    shutil.copytree(PACKAGE, work / "src" / "gliomaforecast", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "Testing", work / "Testing", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "Resources").symlink_to(ROOT / "Resources")
    others = sorted(
        str(p.relative_to(work))
        for p in (work / "src" / "gliomaforecast").rglob("*.py")
        if str(p.relative_to(work / "src" / "gliomaforecast")) not in modules
    )
    config = [
        "[mutmut]",
        "paths_to_mutate=src/gliomaforecast/",
        "do_not_mutate=\n" + "\n".join(f"    {o}" for o in others),
        "also_copy=\n    Testing/\n    Resources\n",
        "tests_dir=\n" + "\n".join(f"    Testing/Python/{t}" for t in tests),
    ]
    (work / "setup.cfg").write_text("\n".join(config) + "\n")
    return work


def _results(work: Path) -> dict[str, str]:
    """mutant name -> mutmut status, read from mutmut's result files."""
    out: dict[str, str] = {}
    for meta in (work / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = _status(code)
    return out


def _status(code: int | None) -> str:
    """mutmut's own reading of a mutant's exit code (killed, survived, no tests, timeout, ...)."""
    from mutmut.__main__ import status_by_exit_code

    return status_by_exit_code.get(code, "suspicious")


def _diff(work: Path, name: str) -> str:
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, capture_output=True,
                           text=True).stdout
    return "\n".join(line for line in shown.splitlines() if line.startswith(("+", "-")) and
                     not line.startswith(("+++", "---")))


def run_group(group: str, jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"mutation-{group}-") as tmp:
        work = _scratch(Path(tmp), group)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)], cwd=work,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        statuses = _results(work)
        if not statuses:
            raise SystemExit(f"mutmut produced no results for {group}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        survivors = {n: _diff(work, n) for n, s in sorted(statuses.items()) if s in ("survived", "no tests")}
    per_module: dict[str, dict[str, int]] = {}
    for name, status in statuses.items():
        module = _module_of(name)
        row = per_module.setdefault(module, {"mutants": 0, "killed": 0, "equivalent": 0, "survived": 0})
        row["mutants"] += 1
        if name in EQUIVALENT:
            row["equivalent"] += 1
        elif status in ("killed", "timeout"):
            row["killed"] += 1
        else:
            row["survived"] += 1
    for row in per_module.values():
        scored = row["mutants"] - row["equivalent"]
        row["score"] = round(row["killed"] / scored, 4) if scored else 1.0
    return {"group": group, "seconds": round(seconds, 1), "modules": per_module, "statuses": statuses,
            "survivors": survivors}


def _module_of(mutant: str) -> str:
    """``gliomaforecast.sdf.x_signed_distance__mutmut_3`` -> ``sdf.py``."""
    dotted = mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]
    parts = re.sub(r"^src\.", "", dotted).split(".")[1:]
    return "/".join(parts) + ".py" if parts else "?"


def _report(results: list[dict]) -> str:
    lines = ["# Mutation testing of the core's numerics (mutmut, `make mutation`)", "",
             "Score = killed / (mutants - equivalent), target >= 85 % per module (issue 34).", "",
             "| group | module | mutants | killed | equivalent | surviving | score | run time |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for module, row in sorted(r["modules"].items()):
            lines.append(f"| {r['group']} | {module} | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
                         f"{row['survived']} | {100 * row['score']:.1f} % | {r['seconds']:.0f} s |")
    lines += ["", "## Equivalent mutants", ""]
    lines += [f"- `{name}`: {why}" for name, why in sorted(EQUIVALENT.items())] or ["(none listed)"]
    lines += ["", "## Surviving mutants", ""]
    for r in results:
        for name, diff in r["survivors"].items():
            if name not in EQUIVALENT:
                lines += [f"### `{name}`", "```diff", diff, "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", action="append", choices=sorted(GROUPS), help="a group (repeatable; default all)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    groups = args.group or list(GROUPS)
    (RESULTS / "mutation").mkdir(parents=True, exist_ok=True)
    for group in groups:
        result = run_group(group, args.jobs)
        (RESULTS / "mutation" / f"{group}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(group, {m: f"{100 * r['score']:.1f} %" for m, r in result["modules"].items()}, flush=True)
    results = [json.loads(p.read_text()) for p in sorted((RESULTS / "mutation").glob("*.json"))]
    (RESULTS / "mutation.md").write_text(_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
