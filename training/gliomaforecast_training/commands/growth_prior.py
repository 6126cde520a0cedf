"""Fit the growth model's population prior on a training cohort and write it as JSON (the file
``Resources/Models/growth_prior.json`` that two-scan forecasts use; docs/growth.md)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "growth-prior"
HELP = "fit the growth model's population prior (rates, delay, slope) on a training cohort"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cohort", type=Path, help="training cohort folder (one case.json per patient; seed 2024)")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")


def run(args: argparse.Namespace) -> int:
    from gliomaforecast.errors import InputError
    from gliomaforecast.evaluation.cohort import find_cases
    from gliomaforecast.growth.prior import prior_record
    from gliomaforecast.io.images import write_text_atomic

    from ..cohort.growth_population import fit_population

    cases = find_cases(args.cohort)
    start = time.perf_counter()
    try:
        prior, used, left = fit_population(cases)
    except ValueError as exc:
        raise InputError(args.cohort, None, str(exc)) from None
    index = args.cohort / "cohort.json"
    seed = json.loads(index.read_text()).get("seed") if index.is_file() else None
    record = prior_record(prior, cohort=str(args.cohort), cohort_seed=seed, patients_used=used, patients_left_out=left,
                          command=f"gliomaforecast-train growth-prior {args.cohort} --out {args.out}",
                          method="per-patient lmfit fit of the full radiotherapy model (all six parameters free), "
                                 "no bootstrap; median per parameter")
    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    values = ", ".join(f"{k} {v:.4g}" for k, v in prior.values.items())
    print(f"wrote {args.out}: {len(used)} patients ({len(left)} left out) in {time.perf_counter() - start:.0f} s; "
          f"medians {values}")
    return 0
