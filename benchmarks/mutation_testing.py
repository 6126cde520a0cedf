"""Mutation testing of the core's numerics with mutmut (issue 34): how many wrong implementations the suite catches.

For each group below, mutmut 3 rewrites every function of the group's modules into mutants (an operator, a
constant, a comparison, an argument changed...) and runs the tests that reach the function against each; a mutant
that no test fails "survives". Runs in a scratch copy of the repository (the package under ``src/`` there, so that
the mutated copy is the one imported), one mutmut run per group, and writes
benchmarks/results/mutation/<group>.json (every mutant's status) and benchmarks/results/mutation.md (the score per
module, the survivors with their diff, and the equivalent mutants listed in ``EQUIVALENT`` with a one-line reason).

    make mutation                                   # every group
    .venv/bin/python benchmarks/mutation_testing.py [--group sdf ...] [--jobs 2]   # mutmut 3.8.1

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
_MUTMUT = str(Path(sys.executable).with_name("mutmut"))  # the script: `python -m mutmut` imports mutmut twice

# group -> (modules under gliomaforecast/, the tests that exercise them)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sdf": (("sdf.py",), ("test_sdf.py", "test_cli_sdf.py")),
    "ctv": (
        ("targets/ctv.py", "targets/volumes.py"),
        ("test_ctv.py", "test_target_volumes.py", "test_target_volumes_exact.py"),
    ),
    "standard_plan": (("targets/standard_plan.py",), ("test_standard_plan.py",)),
    "metrics": (
        ("evaluation/__init__.py", "evaluation/probability.py"),
        ("test_evaluation.py", "test_metrics_exact.py"),
    ),
    "growth": (
        ("growth/model.py", "growth/fit.py"),
        ("test_growth.py", "test_growth_prior.py", "test_growth_fit_exact.py"),
    ),
    "protocols": (
        ("evaluation/protocols.py",),
        ("test_evaluation_protocols.py", "test_progression_rule.py"),
    ),
    "nifti_checks": (
        ("io/headers.py",),
        ("test_reliability_headers.py", "test_geometry_io.py", "test_header_rules_exact.py"),
    ),
}

# Mutants that cannot change a result, reviewed by hand: "module:function: the mutated line" -> why (the key
# survives renumbering when the code around it changes; see benchmarks/results/mutation.md).
_BIGGER_BOX = "a box larger than the grown bounding box gives the same inside distances (the box only bounds the work)"
_SAME_ARRAY = "the same values: a new array instead of one written in place or copied"
_UNIT_GRAM = (
    "rtol scales with the target: 0 off the diagonal (nothing added) and 1 on it, where unit columns give 1 to "
    "rounding, so only atol decides"
)
EQUIVALENT: dict[str, str] = {
    "sdf.py:_distance_to_set: image, squaredDistance=False, useImageSpacing=True, backgroundValue=0":
        "SimpleITK's default insideIsPositive is False",
    "sdf.py:_distance_to_set: image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True, )":
        "SimpleITK's default backgroundValue is 0",
    "sdf.py:_distance_to_set: return np.maximum(out, 0.0, out=None)": _SAME_ARRAY,
    "sdf.py:_distance_to_set: return np.maximum(out, 0.0, )": _SAME_ARRAY,
    "sdf.py:_grown_bounding_box: box.append(slice(None, min(int(hits[-1]) + 2, n)))": _BIGGER_BOX,
    "sdf.py:_grown_bounding_box: box.append(slice(max(int(hits[0]) - 1, 0), None))": _BIGGER_BOX,
    "sdf.py:_grown_bounding_box: box.append(slice(min(int(hits[-1]) + 2, n)))": _BIGGER_BOX,
    "sdf.py:_grown_bounding_box: box.append(slice(max(int(hits[0]) - 2, 0), min(int(hits[-1]) + 2, n)))": _BIGGER_BOX,
    "sdf.py:_grown_bounding_box: box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 3, n)))": _BIGGER_BOX,
    "sdf.py:signed_distance: return phi.astype(np.float32, copy=None)": _SAME_ARRAY,
    "sdf.py:signed_distance: return phi.astype(np.float32, )": _SAME_ARRAY,
    "sdf.py:signed_distance: return phi.astype(np.float32, copy=True)": _SAME_ARRAY,
    "targets/ctv.py:_grown_box: grow = [int(math.floor(margin_mm / s + 1.000000001)) for s in spacing]": _BIGGER_BOX,
    "targets/ctv.py:_grown_box: return tuple(slice(None, min(b.stop + g, n)) for b, g, n in zip(box, grow, "
    "mask.shape))": _BIGGER_BOX,
    "targets/ctv.py:_grown_box: return tuple(slice(max(b.start - g, 0), None) for b, g, n in zip(box, grow, "
    "mask.shape))": _BIGGER_BOX,
    "targets/ctv.py:_grown_box: return tuple(slice(min(b.stop + g, n)) for b, g, n in zip(box, grow, mask.shape))":
        _BIGGER_BOX,
    "io/headers.py:check_nifti_geometry: if not np.allclose(unit @ unit.T, np.eye(3), atol=_ORTHO_TOL):":
        _UNIT_GRAM,
    "io/headers.py:check_nifti_geometry: if not np.allclose(unit @ unit.T, np.eye(3), rtol=1, atol=_ORTHO_TOL):":
        _UNIT_GRAM,
    "targets/ctv.py:_largest: if k > n:": "k == n falls through to the same selection: every value (the k-th largest "
    "is the minimum, the ties fill the rest)",
    "targets/ctv.py:_largest: if need <= tied.size:": "need == tied.size takes every tied entry either way",
    "targets/ctv.py:_largest: tied = tied[_largest(np.asarray(tie_key(tied), dtype=None), need)]":
        "the tie keys are distances (float32/64): their order is the same in float64",
    "targets/ctv.py:_largest: tied = tied[_largest(np.asarray(tie_key(tied), ), need)]":
        "the tie keys are distances (float32/64): their order is the same in float64",
    "targets/ctv.py:_geodesic_distance: band = limit_mm + 3.0 * max(spacing)":
        "a wider narrow band: the same distances up to the margin, which is all that is read",
    "targets/ctv.py:_geodesic_distance: dist = skfmm.distance(phi, dx=list(spacing), narrow=band)":
        "scikit-fmm's default order is 2",
    "targets/ctv.py:_geodesic_distance: dist = skfmm.distance(phi, dx=list(spacing), order=2, )":
        "no narrow band: the same distances up to the margin, computed further out",
    "targets/ctv.py:_geodesic_distance: out = np.ma.filled(np.ma.asarray(dist, dtype=None), np.inf)":
        "scikit-fmm returns float64 already",
    "targets/ctv.py:_geodesic_distance: out = np.ma.filled(np.ma.asarray(dist, ), np.inf)":
        "scikit-fmm returns float64 already",
    "targets/ctv.py:_geodesic_distance: out = np.ma.filled(np.ma.asarray(dist, dtype=np.float64), None)":
        "beyond the band numpy's fill value 1e20 instead of inf: both are beyond any margin (<= margin is read)",
    "targets/ctv.py:_geodesic_distance: out = np.ma.filled(np.ma.asarray(dist, dtype=np.float64), )":
        "beyond the band numpy's fill value 1e20 instead of inf: both are beyond any margin (<= margin is read)",
}


# Functions of the listed modules that are not numerics: their mutants are reported apart, not scored.
OUT_OF_SCOPE = {"evaluation/probability.py:plot_reliability_diagram": "a matplotlib figure, not a metric"}


def equivalence_key(mutant: str, diff: str) -> str:
    """``module:function: added line`` of a mutant (see :data:`EQUIVALENT`)."""
    function = _function_of(mutant)
    added = next((line[1:].strip() for line in diff.splitlines() if line.startswith("+")), "")
    return f"{_module_of(mutant)}:{function}: {added}"


def _scratch(work: Path, group: str) -> Path:
    """A copy of the repository's tests and resources with the package under src/, and mutmut's configuration for
    ``group``: only its modules are mutated, the rest of the package is copied as it is."""
    modules, tests = GROUPS[group]
    shutil.copytree(PACKAGE, work / "src" / "gliomaforecast", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "Testing", work / "Testing", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "Resources").symlink_to(ROOT / "Resources")
    config = [
        "[mutmut]",
        "source_paths=src/",
        "only_mutate=\n" + "\n".join(f"    src/gliomaforecast/{m}" for m in modules),
        "also_copy=\n    Testing/\n    Resources\n",
        "pytest_add_cli_args_test_selection=\n" + "\n".join(f"    Testing/Python/{t}" for t in tests),
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


# How mutmut 3 reads a mutant's exit code (its status_by_exit_code; mutmut is not imported here: importing it
# loads its configuration from the working folder).
_STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
           36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault",
           None: "not checked"}


def _status(code: int | None) -> str:
    return _STATUS.get(code, "suspicious")


def _diff(work: Path, name: str) -> str:
    shown = subprocess.run([_MUTMUT, "show", name], cwd=work, capture_output=True,
                           text=True).stdout
    return "\n".join(line for line in shown.splitlines() if line.startswith(("+", "-")) and
                     not line.startswith(("+++", "---")))


def run_group(group: str, jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"mutation-{group}-") as tmp:
        work = _scratch(Path(tmp), group)
        t0 = time.perf_counter()
        done = subprocess.run([_MUTMUT, "run", "--max-children", str(jobs)], cwd=work,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        statuses = _results(work)
        if not statuses:
            raise SystemExit(f"mutmut produced no results for {group}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        survivors = {n: _diff(work, n) for n, s in sorted(statuses.items()) if s in ("survived", "no tests")}
    return {"group": group, "seconds": round(seconds, 1), "statuses": statuses, "survivors": survivors}


def scores(result: dict) -> tuple[dict[str, dict], dict[str, str], dict[str, str]]:
    """Per module of a group's ``result``: mutants, killed, equivalent, surviving and score; the equivalent mutants
    (name -> key and reason) and the surviving ones (name -> diff). Computed from the stored statuses and diffs, so a
    reviewed :data:`EQUIVALENT` applies without running mutmut again."""
    survivors = result["survivors"]
    equivalent = {
        n: f"{k} -- {EQUIVALENT[k]}" for n, d in survivors.items() if (k := equivalence_key(n, d)) in EQUIVALENT
    }
    per_module: dict[str, dict] = {}
    for name, status in result["statuses"].items():
        row = per_module.setdefault(
            _module_of(name), {"mutants": 0, "killed": 0, "equivalent": 0, "survived": 0, "out_of_scope": 0}
        )
        if f"{_module_of(name)}:{_function_of(name)}" in OUT_OF_SCOPE:
            row["out_of_scope"] += 1
            continue
        row["mutants"] += 1
        if name in equivalent:
            row["equivalent"] += 1
        elif status in ("killed", "timeout", "segfault"):
            row["killed"] += 1
        else:
            row["survived"] += 1
    for row in per_module.values():
        scored = row["mutants"] - row["equivalent"]
        row["score"] = round(row["killed"] / scored, 4) if scored else 1.0
    scoped = {n: d for n, d in survivors.items() if f"{_module_of(n)}:{_function_of(n)}" not in OUT_OF_SCOPE}
    return per_module, equivalent, {n: d for n, d in scoped.items() if n not in equivalent}


def _function_of(mutant: str) -> str:
    """``...x__distance_to_set__mutmut_3`` -> ``_distance_to_set`` (a method: ``xǁClassǁname`` -> ``name``)."""
    name = re.sub(r"__mutmut_\d+$", "", mutant.rsplit(".", 1)[-1])
    return name.split("ǁ")[-1] if name.startswith("xǁ") else name.removeprefix("x_")


def _module_of(mutant: str) -> str:
    """``gliomaforecast.targets.ctv.x_standard_ctv__mutmut_3`` -> ``targets/ctv.py`` (a package's functions: its
    ``__init__.py``)."""
    parts = mutant.split(".x")[0].split(".")[1:]
    module = "/".join(parts)
    return f"{module}.py" if (PACKAGE / f"{module}.py").is_file() else f"{module}/__init__.py"


def _report(results: list[dict]) -> str:
    lines = ["# Mutation testing of the core's numerics (mutmut 3.8.1, `make mutation`)", "",
             "Score = killed / (mutants - equivalent), target >= 85 % per module (issue 34). A mutant no test reaches",
             "counts as surviving; one that times out as killed.", "",
             "| group | module | mutants | killed | equivalent | surviving | score | not scored | run time |",
             "|---|---|---|---|---|---|---|---|---|"]
    reviewed = [(r, *scores(r)) for r in results]
    for r, per_module, _, _ in reviewed:
        for module, row in sorted(per_module.items()):
            lines.append(f"| {r['group']} | {module} | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
                         f"{row['survived']} | {100 * row['score']:.1f} % | {row['out_of_scope']} | "
                         f"{r['seconds']:.0f} s |")
    lines += ["", "Not scored (not numerics): " + "; ".join(f"`{k}` ({v})" for k, v in OUT_OF_SCOPE.items()) + "."]
    lines += ["", "## Equivalent mutants (a one-line reason each)", ""]
    lines += [f"- `{name}`: {why}" for _, _, equivalent, _ in reviewed for name, why in sorted(equivalent.items())]
    lines += ["", "## Surviving mutants", ""]
    for _, _, _, surviving in reviewed:
        for name, diff in surviving.items():
            lines += [f"### `{name}`", "```diff", diff, "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", action="append", choices=sorted(GROUPS), help="a group (repeatable; default all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="rewrite mutation.md from the stored results")
    args = ap.parse_args(argv)
    groups = args.group or list(GROUPS)
    (RESULTS / "mutation").mkdir(parents=True, exist_ok=True)
    for group in [] if args.report_only else groups:
        result = run_group(group, args.jobs)
        (RESULTS / "mutation" / f"{group}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(group, {m: f"{100 * r['score']:.1f} %" for m, r in scores(result)[0].items()}, flush=True)
    results = [json.loads(p.read_text()) for p in sorted((RESULTS / "mutation").glob("*.json"))]
    (RESULTS / "mutation.md").write_text(_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
