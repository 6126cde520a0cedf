"""Forecast a case at a target day: probability and uncertainty maps, predicted FLAIR, displacement,
growth curve, standard and forecast-driven CTVs, report. Writes the output folder atomically."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import defaults
from ..errors import InputError
from ..forecast import Forecast, case_plan_seed, forecast_tumor_ml, run_forecast
from ..forecasters import DEFAULT_FORECASTER, FORECASTER_NAMES, dose_note
from ..forecasters.base import ProgressFn
from ..forecasters.registry import distinct_settings, setting_help
from ..geometry import Grid, require_same_grid, resample_to
from ..io.case import load_case
from ..io.images import check_output_dir, existing_mode, read_mask
from ..io.write_guard import output_lock
from ..plausibility import forecast_warnings
from ..targets.standard_plan import AUTO, SEED_NAMES
from . import add_case_arguments, add_overwrite_argument, add_plan_argument, check_seed, output_path

NAME = "forecast"
HELP = "forecast a case at a target day and build the target volumes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_case_arguments(p)
    p.add_argument(
        "--day",
        required=True,
        help="target day (days, on the case's day axis) or, when the case gives dates, an ISO date; at most "
        "3650 days (10 years) after the last scan",
    )
    p.add_argument("--out", required=True, type=output_path, help="output folder")
    p.add_argument(
        "--forecaster",
        default=DEFAULT_FORECASTER,
        help=f"one of {', '.join(FORECASTER_NAMES)} (default {DEFAULT_FORECASTER}). {dose_note()}",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=defaults.SAMPLES,
        help=f"growth-model samples for the uncertainty (default {defaults.SAMPLES})",
    )
    p.add_argument("--seed", type=int, default=defaults.SEED, help=f"random seed (default {defaults.SEED})")
    p.add_argument("--device", default=defaults.DEVICE, choices=defaults.DEVICES, help="onnxruntime device")
    p.add_argument(
        "--margin-mm",
        type=float,
        default=defaults.MARGIN_MM,
        help=f"standard CTV margin, mm (default {defaults.MARGIN_MM:g})",
    )
    add_plan_argument(p)
    add_overwrite_argument(p)
    p.add_argument(
        "--barrier",
        type=Path,
        default=None,
        help="binary barrier mask (ventricles, falx, tentorium) on the case grid: geodesic margin, "
        "both CTVs kept off it",
    )
    for setting in distinct_settings():  # e.g. --outcome; None: the forecaster's own default
        p.add_argument(
            f"--{setting.name.replace('_', '-')}",
            dest=setting.name,
            choices=setting.choices,
            default=None,
            help=setting_help(setting),
        )
    p.add_argument(
        "--dicom-reference",
        type=Path,
        default=None,
        help="folder with the DICOM planning series of the case's patient: the targets are also written as "
        "RTSTRUCT and DICOM SEG on it into OUT/dicom (as export-dicom does)",
    )


def progress_bar() -> tqdm:
    """The forecast's progress bar on stderr, 0-100 %, drawn only on a terminal."""
    return tqdm(
        total=100,
        desc="forecast",
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]",
    )


def bar_progress(bar: tqdm) -> ProgressFn:
    """A ``progress(fraction, message)`` that shows ``message`` on ``bar`` and moves it to 95 % of ``fraction`` (the
    last 5 % are the writing)."""

    def progress(fraction: float, message: str) -> None:
        bar.set_description_str(message)
        bar.update(max(0, round(95 * fraction) - bar.n))

    return progress


def forecast_to_folder(
    case: Path,
    day: float | str,
    out: Path,
    *,
    forecaster: str,
    samples: int,
    seed: int,
    device: str,
    margin_mm: float,
    resample: bool = False,
    barrier: Path | None = None,
    existing: str = "refuse",
    settings: dict | None = None,
    plan: str = AUTO,
) -> tuple[Forecast, list[str]]:
    """Run a forecast with a progress bar on stderr and write its folder; returns the forecast and its plausibility
    warnings (computed once: forecast.json, the report and :func:`summary` share them).
    ``resample`` puts every volume on the first FLAIR's grid (linear for images, nearest for masks), the
    ``barrier`` mask file included. ``plan``: the standard plan's convention (``standard_plan.CHOICES``).
    ``existing``: what a non-empty ``out`` gets (``io.check_output_dir``). The
    folder's lock is held from the start, so a second run to the same ``out`` is refused at once; the target day is
    checked (``Case.target_day``: at most 10 years beyond the scans) before any work."""
    from ..output.writer import write_forecast

    if not math.isfinite(margin_mm) or margin_mm < 0:
        raise InputError("--margin-mm", None, f"must be a distance >= 0 mm, got {margin_mm}")
    check_output_dir(out, existing)
    with output_lock(out), progress_bar() as bar:
        progress = bar_progress(bar)
        loaded = load_case(case, resample=resample)
        case_plan_seed(loaded, plan)  # a convention the planning scan cannot serve is refused before any work
        wall = None if barrier is None else read_barrier(barrier, loaded.grid, resample)
        fc = run_forecast(
            loaded,
            loaded.target_day(day),
            forecaster,
            samples=samples,
            seed=seed,
            device=device,
            margin_mm=margin_mm,
            progress=progress,
            barrier=wall,
            settings=settings,
            plan=plan,
        )
        progress(0.95, "writing outputs")
        warnings = forecast_warnings(fc)
        write_forecast(fc, out, existing=existing, warnings=warnings)
        bar.update(100 - bar.n)
    return fc, warnings


def read_barrier(path: Path, grid: Grid, resample: bool) -> np.ndarray:
    """The barrier mask file on the case ``grid`` (bool); a different grid is an error naming both, unless
    ``resample`` (nearest neighbour)."""
    mask, mask_grid = read_mask(path, "barrier")
    if not mask_grid.same_as(grid):
        if not resample:
            require_same_grid(mask_grid, grid, f"{path} (barrier)", "the case grid")
        mask = resample_to(mask, mask_grid, grid, label=True)
    return mask.astype(bool)


def _date(fc: Forecast) -> str:
    date = fc.case.date_of(fc.target_day)
    return "" if date is None else f" ({date.isoformat()})"


def summary(fc: Forecast, out: Path, warnings: list[str]) -> str:
    """A few lines for the terminal: what was written, volumes in mL, the plausibility ``warnings``."""
    ml = fc.case.grid.voxel_volume_ml
    med, lo, hi = (float(v[0]) for v in fc.growth.predict([fc.target_day]))
    return "\n".join(
        [
            f"{fc.case.patient_id}: forecast at day {fc.target_day:g}{_date(fc)} with '{fc.forecaster}' -> {out}",
            f"  forecast tumor {forecast_tumor_ml(fc):.2f} mL; growth model ({fc.growth.model}) {med:.2f} mL"
            f" (95% band {lo:.2f}-{hi:.2f} mL)",
            f"  GTV {fc.gtv.sum() * ml:.2f} mL | CTV standard ({fc.plan}, {fc.margin_mm:g} mm) "
            f"{fc.ctv_standard.sum() * ml:.2f} mL | CTV forecast {fc.ctv_forecast.sum() * ml:.2f} mL (iso-volumetric)",
            f"  both CTVs from the {fc.plan} seed, {SEED_NAMES[fc.plan]} (cavity {fc.cavity_ml:.2f} mL), holes filled; "
            f"{'geodesic margin around the barrier' if fc.barrier_used else 'Euclidean margin (no barrier given)'}",
            *(f"  WARNING: {line}" for line in warnings),
            f"  took {fc.timings['total_s']:.1f} s; open {out / 'report.html'}",
        ]
    )


def dicom_reference(case: Path, folder: Path):
    """The DICOM planning series of ``--dicom-reference``, read and checked against the case's patient before any
    work (``dicom_export.Reference``)."""
    from ..dicom.export import read_reference, require_patient

    reference = read_reference(folder)
    require_patient(load_case(case, check_grids=False).patient_id, case, reference)
    return reference


def chosen_settings(args: argparse.Namespace) -> dict[str, str] | None:
    """The forecaster settings given as flags (``--outcome``...); None when none is: each forecaster's own default."""
    given = {s.name: getattr(args, s.name) for s in distinct_settings() if getattr(args, s.name) is not None}
    return given or None


def run(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    defaults.check_limit(args.samples, "samples", "--samples", None, "samples")
    reference = None if args.dicom_reference is None else dicom_reference(args.case, args.dicom_reference)
    fc, warnings = forecast_to_folder(
        args.case,
        args.day,
        args.out,
        forecaster=args.forecaster,
        samples=args.samples,
        seed=args.seed,
        device=args.device,
        margin_mm=args.margin_mm,
        resample=args.resample,
        barrier=args.barrier,
        existing=existing_mode(args.overwrite),
        settings=chosen_settings(args),
        plan=args.plan,
    )
    print(summary(fc, args.out, warnings))
    if reference is not None:
        from ..dicom.export import export_dicom
        from .export_dicom import describe

        print(describe(export_dicom(args.out, reference, args.out / "dicom"), args.out / "dicom"))
    return 0
