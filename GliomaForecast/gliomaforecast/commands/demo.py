"""Run the shipped sample patient end to end: forecast 120 days after its last scan with the default
forecaster, write the output folder and report, and print what was written, the wall time and the
peak memory."""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from .. import defaults
from ..errors import InputError
from ..forecasters import DEFAULT_FORECASTER, FORECASTER_NAMES
from ..io.case import load_case
from ..resources import resources_dir
from . import output_path
from .forecast import forecast_to_folder, summary

NAME = "demo"
HELP = "forecast the shipped sample patient end to end"
SAMPLE_CASE = resources_dir() / "SampleData" / "sample_patient" / "case.json"
HORIZON_DAYS = 120.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=output_path, default=Path("demo_output"), help="output folder (default demo_output)")
    p.add_argument(
        "--forecaster",
        default=DEFAULT_FORECASTER,
        help=f"one of {', '.join(FORECASTER_NAMES)} (default {DEFAULT_FORECASTER})",
    )
    p.add_argument("--case", type=Path, default=SAMPLE_CASE, help="case manifest (default: the sample patient)")


def run(args: argparse.Namespace) -> int:
    if not args.case.is_file():
        raise InputError(args.case, None, "sample patient not found")
    t0 = time.perf_counter()
    day = float(load_case(args.case).days[-1]) + HORIZON_DAYS
    fc, warnings = forecast_to_folder(
        args.case,
        day,
        args.out,
        forecaster=args.forecaster,
        samples=defaults.SAMPLES,
        seed=defaults.SEED,
        device=defaults.DEVICE,
        margin_mm=defaults.MARGIN_MM,
        existing="replace",
    )  # the demo's own folder: a re-run replaces it whole
    print(summary(fc, args.out, warnings))
    for path in sorted(args.out.iterdir()):
        print(f"  wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"demo finished in {time.perf_counter() - t0:.1f} s wall time, peak memory {peak:.0f} MiB")
    return 0
