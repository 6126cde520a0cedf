"""Forecast a case at a target day: probability and uncertainty maps, predicted FLAIR, displacement,
growth curve, standard and forecast-driven CTVs, report. Writes the output folder atomically."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from tqdm import tqdm

from .. import defaults
from ..case import load_case
from ..errors import InputError
from ..io import check_output_dir
from ..forecast import Forecast, forecast_tumor_ml, run_forecast
from ..plausibility import forecast_warnings
from ..forecasters import DEFAULT_FORECASTER, FORECASTER_NAMES, dose_note
from . import add_case_arguments

NAME = "forecast"
HELP = "forecast a case at a target day and build the target volumes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_case_arguments(p)
    p.add_argument("--day", required=True, type=float, help="target day (days, on the case's day axis)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--forecaster", default=DEFAULT_FORECASTER,
                   help=f"one of {', '.join(FORECASTER_NAMES)} (default {DEFAULT_FORECASTER}). {dose_note()}")
    p.add_argument("--samples", type=int, default=defaults.SAMPLES,
                   help=f"growth-model samples for the uncertainty (default {defaults.SAMPLES})")
    p.add_argument("--seed", type=int, default=defaults.SEED, help=f"random seed (default {defaults.SEED})")
    p.add_argument("--device", default=defaults.DEVICE, choices=defaults.DEVICES, help="onnxruntime device")
    p.add_argument("--margin-mm", type=float, default=defaults.MARGIN_MM,
                   help=f"standard CTV margin, mm (default {defaults.MARGIN_MM:g})")


def forecast_to_folder(case: Path, day: float, out: Path, *, forecaster: str, samples: int, seed: int,
                       device: str, margin_mm: float, resample: bool = False) -> Forecast:
    """Run a forecast with a progress bar on stderr and write its folder; returns the forecast.
    ``resample`` puts every volume on the first FLAIR's grid (linear for images, nearest for masks)."""
    from ..forecast_output import write_forecast

    if not math.isfinite(margin_mm) or margin_mm < 0:
        raise InputError("--margin-mm", None, f"must be a distance >= 0 mm, got {margin_mm}")
    check_output_dir(out)
    with tqdm(total=100, desc="forecast", file=sys.stderr, leave=False, disable=not sys.stderr.isatty(),
              bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_description_str(message)
            bar.update(max(0, round(95 * fraction) - bar.n))
        fc = run_forecast(load_case(case, resample=resample), day, forecaster, samples=samples, seed=seed,
                          device=device, margin_mm=margin_mm, progress=progress)
        progress(0.95, "writing outputs")
        write_forecast(fc, out)
        bar.update(100 - bar.n)
    return fc


def summary(fc: Forecast, out: Path) -> str:
    """A few lines for the terminal: what was written, volumes in mL."""
    ml = fc.case.grid.voxel_volume_ml
    med, lo, hi = (float(v[0]) for v in fc.growth.predict([fc.target_day]))
    return "\n".join([
        f"{fc.case.patient_id}: forecast at day {fc.target_day:g} with '{fc.forecaster}' -> {out}",
        f"  forecast tumor {forecast_tumor_ml(fc):.2f} mL; growth model ({fc.growth.model}) {med:.2f} mL"
        f" (95% band {lo:.2f}-{hi:.2f} mL)",
        f"  GTV {fc.gtv.sum() * ml:.2f} mL | CTV standard ({fc.margin_mm:g} mm) {fc.ctv_standard.sum() * ml:.2f} mL"
        f" | CTV forecast {fc.ctv_forecast.sum() * ml:.2f} mL (iso-volumetric)",
        *(f"  WARNING: {line}" for line in forecast_warnings(fc)),
        f"  took {fc.timings['total_s']:.1f} s; open {out / 'report.html'}",
    ])


def run(args: argparse.Namespace) -> int:
    fc = forecast_to_folder(args.case, args.day, args.out, forecaster=args.forecaster, samples=args.samples,
                            seed=args.seed, device=args.device, margin_mm=args.margin_mm, resample=args.resample)
    print(summary(fc, args.out))
    return 0
