"""Fit the mechanistic growth model to a case's GTV volumes and forecast the burden at chosen days.

Writes growth.json (model, parameters with bootstrap percentiles, R^2, predictions with 95% band) and
growth.png into the output folder, atomically.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from .. import defaults
from ..errors import InputError
from ..growth import burden_from_case, fit_growth
from ..growth.record import growth_record
from ..io.case import load_case
from ..io.images import atomic_output_dir, existing_mode
from ..io.shown_paths import shown_path
from . import add_case_arguments, add_overwrite_argument, check_seed, output_path

NAME = "growth"
HELP = "fit the growth model with RT to a case's GTV volumes; growth.json + growth.png"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_case_arguments(p)
    p.add_argument("--out", required=True, type=output_path, help="output folder")
    add_overwrite_argument(p)
    p.add_argument("--rt-start-day", type=float, default=None, help="RT start day (default: the case's)")
    p.add_argument(
        "--day",
        type=float,
        action="append",
        default=[],
        help="forecast day (repeatable; at most 3650 days, 10 years, beyond the scans)",
    )
    p.add_argument(
        "--n-bootstrap",
        type=int,
        default=defaults.N_BOOTSTRAP,
        help=f"bootstrap refits (default {defaults.N_BOOTSTRAP})",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=defaults.BOOTSTRAP_NOISE,
        help=f"relative bootstrap noise (default {defaults.BOOTSTRAP_NOISE:g})",
    )
    p.add_argument("--seed", type=int, default=defaults.SEED, help=f"bootstrap seed (default {defaults.SEED})")


def run(args: argparse.Namespace) -> int:
    days_req = np.asarray(args.day, dtype=float)
    if not np.all(np.isfinite(days_req)):
        raise InputError("--day", None, "forecast days must be finite numbers")
    if args.rt_start_day is not None and not math.isfinite(args.rt_start_day):
        raise InputError("--rt-start-day", None, f"must be a finite day, got {args.rt_start_day}")
    if args.n_bootstrap < 0:
        raise InputError("--n-bootstrap", None, f"must be 0 or more refits, got {args.n_bootstrap}")
    defaults.check_limit(args.n_bootstrap, "bootstrap", "--n-bootstrap", None, "bootstrap refits")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise InputError("--noise", None, f"must be a relative noise >= 0, got {args.noise}")
    if args.noise > defaults.MAX_NOISE:
        raise InputError("--noise", None, f"{args.noise:g} is over the limit of {defaults.MAX_NOISE:g} (a fraction)")
    check_seed(args.seed)
    case = load_case(args.case, resample=args.resample)
    days_req = np.asarray([case.target_day(d, "day") for d in days_req], dtype=float)
    days, volumes = burden_from_case(case)
    rt = case.rt_start_day if args.rt_start_day is None else args.rt_start_day
    fit = fit_growth(days, volumes, rt, args.n_bootstrap, args.noise, args.seed, source=str(args.case))
    unit = "mL" if case.grid.ndim == 3 else "mm^2"  # a 2D case's burden is the GTV's area
    record = {"patient_id": case.patient_id, "case": shown_path(args.case), **growth_record(fit, days_req, unit)}
    from ..growth.plot import plot_growth

    with atomic_output_dir(args.out, inputs=[args.case], existing=existing_mode(args.overwrite)) as tmp:
        (tmp / "growth.json").write_text(json.dumps(record, indent=2) + "\n")
        plot_growth(
            fit, tmp / "growth.png", forecast_days=days_req, unit=unit, title=f"{case.patient_id}: {fit.model} model"
        )
    print(f"wrote {args.out}/growth.json and growth.png: {fit.note}; R^2 {fit.r_squared:.3f}")
    for p in record["predictions"]:
        print(f"day {p['day']:g}: {p['median']:.2f} {unit} (95% band {p['lower_2.5']:.2f}-{p['upper_97.5']:.2f})")
    return 0
