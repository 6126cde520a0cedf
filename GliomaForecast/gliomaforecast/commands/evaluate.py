"""Evaluate forecasters on a cohort under a protocol: ``last-scan`` (default: every patient's last scan from the
earlier ones), ``horizon`` (every input prefix and every later scan whose gap lies in --horizon-days; with
``--pairs first-per-bin`` only the first such pair per patient and gap bin, the same for every forecaster) or
``recurrence`` (the first post-RT progression from the scans up to the RT planning scan).

COHORT_DIR holds one folder per patient with a case.json. Writes patients.csv (one row per patient and
forecaster), skipped.csv (with reasons), summary.json (statistics, Wilcoxon tests, time-gap bins),
boxplots.png and timings.json into --out, atomically. See docs/evaluation.md for the metrics. With --scheduler the
patients run as tasks on a dask.distributed cluster (docs/scaling.md); the outputs are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from pathlib import Path

from .. import defaults, scheduling
from ..errors import InputError
from ..evaluation.cohort import EvaluationSettings, evaluate_cohort, find_cases, write_results
from ..evaluation.protocols import PROTOCOLS, parse_horizon
from ..forecasters import FORECASTER_NAMES
from ..io.case import load_case
from ..io.images import atomic_output_dir, existing_mode
from . import add_overwrite_argument, add_plan_argument, check_seed, output_path

NAME = "evaluate"
HELP = "score forecasters on a cohort under a protocol (last-scan, horizon, recurrence); CSV + JSON + box plots"


def _add_parallel_arguments(p: argparse.ArgumentParser) -> None:
    """``--jobs`` and ``--scheduler`` (the results depend on neither)."""
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="patients evaluated in parallel (default: the number of CPUs)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS|local[:N]",
        help="run the patients as tasks on a dask.distributed scheduler (tcp://host:8786) or on a cluster of N local "
        'worker processes (local: one per CPU); not with --jobs; needs pip install "gliomaforecast[distributed]" and '
        "a cohort folder every worker sees (docs/scaling.md)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cohort", type=Path, help="cohort folder (one sub-folder with a case.json per patient)")
    p.add_argument("--out", required=True, type=output_path, help="output folder")
    add_overwrite_argument(p)
    p.add_argument(
        "--forecaster",
        action="append",
        default=None,
        metavar="NAME",
        help=f"forecaster to evaluate (repeatable; default: all of {', '.join(FORECASTER_NAMES)})",
    )
    p.add_argument(
        "--protocol",
        default="last-scan",
        metavar="NAME",
        help=f"one of {', '.join(PROTOCOLS)} (default last-scan; see docs/evaluation.md)",
    )
    p.add_argument(
        "--horizon-days",
        default=None,
        metavar="MIN-MAX",
        help="with --protocol horizon: the gaps (days, inclusive) from the last input scan to the target, e.g. 90-365",
    )
    p.add_argument(
        "--pairs",
        default="all",
        metavar="RULE",
        help="with --protocol horizon: score every (inputs, later scan) pair (all, default) or, per "
        "patient and gap bin, the first (first-per-bin: fewest inputs, then earliest target; the "
        "same pairs for every forecaster; the standing benchmark's rule)",
    )
    _add_parallel_arguments(p)
    p.add_argument("--seed", type=int, default=defaults.SEED, help=f"seed of every forecast (default {defaults.SEED})")
    p.add_argument(
        "--samples",
        type=int,
        default=defaults.SAMPLES,
        help=f"growth-model samples per forecast (default {defaults.SAMPLES})",
    )
    p.add_argument(
        "--n-bootstrap",
        type=int,
        default=defaults.N_BOOTSTRAP,
        help=f"growth-model bootstrap refits (default {defaults.N_BOOTSTRAP})",
    )
    p.add_argument(
        "--margin-mm",
        type=float,
        default=defaults.MARGIN_MM,
        help=f"standard CTV margin in mm (default {defaults.MARGIN_MM:g})",
    )
    add_plan_argument(p)
    p.add_argument(
        "--device", choices=defaults.DEVICES, default=defaults.DEVICE, help=f"model device (default {defaults.DEVICE})"
    )


def cohort_inputs(cohort: Path, cases: list[Path]) -> list[Path]:
    """What an evaluation reads: the cohort folder, its case manifests and every file they list (parsed here, in
    this process; a manifest that cannot be read is skipped by the evaluation itself): no --overwrite replaces a
    folder that holds one or lies inside one."""
    for case in cases:
        with contextlib.suppress(InputError, OSError, ValueError):
            load_case(case, check_grids=False)  # remembers the listed files (io.images.remember_inputs)
    return [cohort, *cases]


def _jobs(args: argparse.Namespace) -> int:
    """The local worker processes: --jobs (default: the CPUs), 1 with --scheduler (checked; not with --jobs)."""
    if args.scheduler is None:
        return args.jobs if args.jobs is not None else os.cpu_count() or 1
    if args.jobs is not None:
        raise InputError("--scheduler", None, "cannot be combined with --jobs (the scheduler's workers are the jobs)")
    scheduling.parse_scheduler(args.scheduler)
    return 1


def run(args: argparse.Namespace) -> int:
    names = tuple(dict.fromkeys(args.forecaster or FORECASTER_NAMES))
    jobs = _jobs(args)
    check_seed(args.seed)
    if args.samples < 1:
        raise InputError("--samples", None, f"must be at least 1, got {args.samples}")
    defaults.check_limit(args.samples, "samples", "--samples", None, "samples")
    if args.n_bootstrap < 0:
        raise InputError("--n-bootstrap", None, f"must be at least 0, got {args.n_bootstrap}")
    defaults.check_limit(args.n_bootstrap, "bootstrap", "--n-bootstrap", None, "bootstrap refits")
    if not args.margin_mm > 0:
        raise InputError("--margin-mm", None, f"must be a positive distance in mm, got {args.margin_mm}")
    if args.protocol == "horizon" and args.horizon_days is None:
        raise InputError("--horizon-days", None, "is required with --protocol horizon (e.g. 90-365)")
    if args.protocol != "horizon" and args.horizon_days is not None:
        raise InputError("--horizon-days", None, f"only applies to --protocol horizon, not {args.protocol!r}")
    if args.protocol != "horizon" and args.pairs != "all":
        raise InputError("--pairs", None, f"only applies to --protocol horizon, not {args.protocol!r}")
    horizon = parse_horizon(args.horizon_days) if args.horizon_days is not None else (0.0, math.inf)
    settings = EvaluationSettings(
        names,
        args.seed,
        args.samples,
        args.n_bootstrap,
        args.margin_mm,
        args.device,
        args.protocol,
        horizon,
        args.pairs,
        args.plan,
    )
    settings.protocol_spec()
    cases = find_cases(args.cohort)
    start = time.perf_counter()
    with atomic_output_dir(
        args.out, inputs=cohort_inputs(args.cohort, cases), existing=existing_mode(args.overwrite)
    ) as tmp:
        result = evaluate_cohort(
            args.cohort, settings, jobs, progress=lambda msg: print(msg, flush=True), scheduler=args.scheduler
        )
        empty = [n for n in names if not any(r["forecaster"] == n for r in result.rows)]
        if empty:
            reason = next((s["reason"] for s in result.skipped if s["forecaster"] in (empty[0], None)), "")
            raise InputError(
                args.cohort,
                None,
                f"forecaster {empty[0]} scored no patient under the {args.protocol} protocol (first reason: {reason})",
            )
        write_results(result, tmp)
    seconds = time.perf_counter() - start
    where = f"{jobs} jobs" if args.scheduler is None else f"{result.run['workers']} workers of {args.scheduler}"
    print(
        f"evaluated {result.n_cases} cases ({len(result.skipped)} skipped entries) with {', '.join(names)} "
        f"on {where} in {seconds:.1f} s; wrote {args.out}/summary.json, patients.csv, boxplots.png"
    )
    return 0
