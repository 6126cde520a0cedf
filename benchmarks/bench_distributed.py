"""Evaluation on dask.distributed (issue 33) against local processes, same run, alternating.

1. Overhead: ``gliomaforecast evaluate COHORT --jobs 2`` and ``--scheduler local:2`` (a LocalCluster of 2
   single-threaded worker processes, started inside the timed command, as a user gets it), ``--rounds`` times each,
   alternating; the median wall time of each and the overhead of the scheduler (target <= 10 %).
2. Many workers: ``--scheduler local:8`` (8 single-threaded workers on however many cores there are) once.
Every run's summary.json and patients.csv must be byte-identical to the first ``--jobs 2`` run's (timings.json
aside). Writes benchmarks/results/distributed.json.

    .venv/bin/python benchmarks/bench_distributed.py [--cohort BENCHMARK_COHORT] [--forecaster NAME ...] [--rounds 2]

The standing figure is the 24-patient benchmark cohort (``gliomaforecast-train benchmark-cohort``; generated into a
temporary folder with ``--jobs 2`` first when ``--cohort`` is not given, as ``run_all.py`` calls it). The default
forecasters are the cheap ones (persistence, evolution-field); give ``--forecaster`` to time others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import console_script, timed_run

ROOT = Path(__file__).resolve().parents[1]
COMPARED = ("summary.json", "patients.csv", "skipped.csv")
DEFAULT_FORECASTERS = ("persistence", "evolution-field")


def _evaluate(cohort: Path, out: Path, forecasters: list[str], parallel: list[str], extra: list[str]) -> float:
    cmd = [console_script("gliomaforecast"), "evaluate", str(cohort), "--out", str(out), *parallel, *extra]
    for name in forecasters:
        cmd += ["--forecaster", name]
    return timed_run(cmd)


def _digests(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in COMPARED if (out / name).exists()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, default=None,
                    help="cohort folder (default: the 24-patient benchmark cohort, generated into a temporary folder)")
    ap.add_argument("--forecaster", action="append", default=None, metavar="NAME",
                    help=f"forecaster (repeatable; default {', '.join(DEFAULT_FORECASTERS)})")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each of --jobs 2 and local:2 (alternating)")
    ap.add_argument("--many", type=int, default=8, help="workers of the simulated large run (local:N)")
    ap.add_argument("--extra", default="", help="more evaluate arguments, e.g. '--protocol horizon'")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distributed.json")
    args = ap.parse_args(argv)
    forecasters = args.forecaster or list(DEFAULT_FORECASTERS)
    extra = args.extra.split()
    work = Path(tempfile.mkdtemp(prefix="bench_distributed-"))
    generated = args.cohort is None
    runs: dict[str, list[float]] = {"jobs2": [], "local2": []}
    reference: dict[str, str] | None = None
    identical = True
    try:
        if generated:
            args.cohort = work / "benchmark-cohort"
            cmd = [console_script("gliomaforecast-train"), "benchmark-cohort", "--out",
                   str(args.cohort), "--jobs", "2", "--no-progress"]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        patients = sum(1 for p in args.cohort.iterdir() if (p / "case.json").is_file())
        for r in range(args.rounds):
            for name, parallel in (("jobs2", ["--jobs", "2"]), ("local2", ["--scheduler", "local:2"])):
                out = work / f"{name}-{r}"
                runs[name].append(_evaluate(args.cohort, out, forecasters, parallel, extra))
                digests = _digests(out)
                reference = reference or digests
                identical &= digests == reference
                print(f"{name} round {r + 1}: {runs[name][-1]:.1f} s, identical: {digests == reference}", flush=True)
        out = work / "many"
        many_s = _evaluate(args.cohort, out, forecasters, ["--scheduler", f"local:{args.many}"], extra)
        many_identical = _digests(out) == reference
        print(f"local:{args.many}: {many_s:.1f} s, identical: {many_identical}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    jobs2, local2 = statistics.median(runs["jobs2"]), statistics.median(runs["local2"])
    result = {
        "cohort": "benchmark-cohort (generated, --jobs 2)" if generated else str(args.cohort),
        "patients": patients, "forecasters": forecasters, "extra_arguments": extra,
        "cpus": os.cpu_count(), "rounds": args.rounds,
        "jobs2_seconds": [round(s, 2) for s in runs["jobs2"]],
        "local2_seconds": [round(s, 2) for s in runs["local2"]],
        "jobs2_median_s": round(jobs2, 2), "local2_median_s": round(local2, 2),
        "scheduler_overhead_fraction": round(local2 / jobs2 - 1.0, 4),
        "overhead_target": 0.10, "identical_outputs": bool(identical),
        f"local{args.many}_seconds": round(many_s, 2), f"local{args.many}_identical": bool(many_identical),
        "compared_files": list(COMPARED),
        "note": "wall time of the whole command (LocalCluster start included); timings.json is not compared",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"overhead {100 * result['scheduler_overhead_fraction']:+.1f} % (target <= 10 %); wrote {args.out}")
    return 0 if identical and many_identical else 1


if __name__ == "__main__":
    sys.exit(main())
