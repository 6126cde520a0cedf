"""Generate the standing held-out long-horizon benchmark cohort (issue 12): fixed seed and size
(``gliomaforecast_training.cohort_seeds``: BENCHMARK_SEED, BENCHMARK_SIZE), dense follow-up (a scan every
30-60 days up to 12-18 months after RT), realism 2, 2 mm. Never used for training. Prints the number of
scored forecasts the horizon protocol gets per gap bin (every prefix of i >= 2 scans and later scan j)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "benchmark-cohort"
HELP = "generate the held-out long-horizon benchmark cohort (fixed seed and size, dense follow-up)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per patient)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .. import cohort_seeds as cs
    from ..cohort import generate_cohort

    t = time.perf_counter()
    index_path = generate_cohort(cs.BENCHMARK_SIZE, cs.BENCHMARK_SEED, args.out, cs.BENCHMARK_SPACING_MM,
                                 progress=not args.no_progress, follow_up=cs.BENCHMARK_FOLLOW_UP)
    seconds = time.perf_counter() - t
    index = json.loads(Path(index_path).read_text())
    pairs = ", ".join(f"{k}: {v}" for k, v in index["horizon_pairs"].items())
    print(f"wrote {cs.BENCHMARK_SIZE} patients (seed {cs.BENCHMARK_SEED}, dense follow-up) and {index_path} "
          f"in {seconds:.0f} s; horizon pairs per gap bin (days): {pairs}")
    return 0
