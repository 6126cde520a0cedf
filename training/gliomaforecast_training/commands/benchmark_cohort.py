"""Generate the standing held-out benchmark cohort (issue 12): fixed seed
(``gliomaforecast_training.cohort.cohort_seeds``: BENCHMARK_SEED), dense follow-up (a scan every 30-60 days up to
12-18 months after RT), realism 3 (issue 29; realism 2 before), 2 mm. Never used for training or any choice. ``--n`` patients: BENCHMARK_SIZE
(24, the long-horizon benchmark) by default, RECURRENCE_BENCHMARK_SIZE (96) for the recurrence benchmark, whose
first 24 patients are the same (patient i's seed does not depend on n). Prints the number of scored forecasts the
horizon protocol gets per gap bin (every prefix of i >= 2 scans and later scan j)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gliomaforecast.errors import InputError

from .cohort import add_parallel_arguments, parallel_from_args, run_generation

NAME = "benchmark-cohort"
HELP = "generate the held-out benchmark cohort (fixed seed, 24 patients or --n 96 for recurrence, dense follow-up)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per patient)")
    p.add_argument("--n", type=int, default=None, metavar="N",
                   help="patients (default 24, the long-horizon benchmark; 96: the recurrence benchmark)")
    add_parallel_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..cohort import cohort_seeds as cs

    n = cs.BENCHMARK_SIZE if args.n is None else args.n
    if n < cs.BENCHMARK_SIZE:
        raise InputError("--n", None, f"at least {cs.BENCHMARK_SIZE} (the long-horizon benchmark), got {n}")
    jobs = parallel_from_args(args)
    t = time.perf_counter()
    index_path = run_generation(args, jobs, n=n, seed=cs.BENCHMARK_SEED, out_dir=args.out,
                                spacing=cs.BENCHMARK_SPACING_MM, progress=not args.no_progress,
                                follow_up=cs.BENCHMARK_FOLLOW_UP)
    seconds = time.perf_counter() - t
    index = json.loads(Path(index_path).read_text())
    pairs = ", ".join(f"{k}: {v}" for k, v in index["horizon_pairs"].items())
    print(f"wrote {n} patients (seed {cs.BENCHMARK_SEED}, dense follow-up) and {index_path} "
          f"in {seconds:.0f} s; horizon pairs per gap bin (days): {pairs}")
    return 0
