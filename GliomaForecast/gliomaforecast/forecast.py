"""Forecast orchestration: a case + a target day -> probability map, uncertainty, image, CTVs, growth.

Forecasters plug in behind one interface and one registry (:mod:`gliomaforecast.forecasters`). The
orchestration loads and checks the case, fits the growth model to the GTV volumes (mL), runs the
forecaster, and builds both target volumes: the standard CTV (15 mm margin, inside the brain mask, around the seed of
the planning convention, :mod:`standard_plan`: the last scan's tumour core + cavity for ``estro-eano``, its whole GTV +
cavity for ``flair``) and the iso-volumetric forecast CTV (the same voxel count, highest forecast probability first).
Time is in days since the case's day 0, volumes in mL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import defaults, sdf
from .errors import InputError
from .forecasters import DEFAULT_FORECASTER, REGISTRY, ForecasterEntry, entry
from .forecasters.base import ForecasterOutput, ForecastRequest, ProgressFn, no_progress
from .growth.burden import burden_from_case
from .growth.checks import cap_growth
from .growth.fit import GrowthFit, constant_fit, fit_growth
from .input_shift import InputShift, assess, load_reference, reference_path
from .io.case import Case, load_case
from .targets.standard_plan import AUTO, PlanError, PlanSeed, check_convention, plan_seed
from .targets.volumes import Targets, build_targets, standard_target


@dataclass
class Forecast:
    """The full result: the forecaster's output, both CTVs (bool), the growth fit and bookkeeping."""

    case: Case
    target_day: float
    forecaster: str
    output: ForecasterOutput
    growth: GrowthFit
    gtv: np.ndarray
    ctv_standard: np.ndarray
    ctv_forecast: np.ndarray
    margin_mm: float
    seed: int
    samples: int
    timings: dict[str, float]
    cavity_ml: float = 0.0
    barrier_used: bool = False
    forecast_shortfall: int = 0
    plan: str = "flair"  # the planning convention of the standard plan (standard_plan.CONVENTIONS)
    plan_warning: str | None = None  # why ``auto`` fell back to flair, or None
    input_shift: InputShift | None = None  # how far the inputs lie from the model's training scans (learned models)


def forecast_tumor_ml(fc: Forecast) -> float:
    """Volume (mL) of the forecast tumor: the region phi <= 0 of the probability map (``sdf.tumor_region``), inside
    the brain mask when the case has one (so never more than the brain)."""
    return scenario_tumor_ml(fc, fc.output.probability)


def scenario_tumor_ml(fc: Forecast, probability: np.ndarray) -> float:
    """Volume (mL) of the tumor region phi <= 0 of ``probability`` (a map on ``fc``'s case grid) inside the brain
    mask when the case has one."""
    region = sdf.tumor_region(probability)
    brain = fc.case.brain_mask()
    if brain is not None:
        region &= brain
    return float(np.count_nonzero(region) * fc.case.grid.voxel_volume_ml)


def fit_case_growth(case: Case, n_bootstrap: int = defaults.N_BOOTSTRAP, seed: int = defaults.SEED) -> GrowthFit:
    """The growth model fitted to the case's GTV volumes (mL) over its scan days (days), as a forecast fits it."""
    days, volumes = burden_from_case(case)
    if len(days) == 1:  # a single-scan forecaster (min_scans 1): nothing to fit, the volume is held
        return constant_fit(days[0], volumes[0], case.rt_start_day, seed, source=str(case.path))
    return fit_growth(days, volumes, case.rt_start_day, n_bootstrap=n_bootstrap, seed=seed, source=str(case.path))


def case_plan_seed(case: Case, convention: str | None = AUTO) -> PlanSeed:
    """The standard plan's seed (:func:`standard_plan.plan_seed`) from the case's planning scan (its last timepoint):
    its GTV and BraTS labels. A convention the scan cannot serve is an InputError naming the case field."""
    last = case.timepoints[-1]
    try:
        convention = check_convention(convention)
    except ValueError as exc:
        raise InputError(None, "plan", str(exc)) from None
    try:
        return plan_seed(case.gtv(last), case.labels(last), convention)
    except PlanError as exc:
        raise InputError(case.path, f"timepoints[{last.index}].labels", str(exc)) from None


def check_target_day(case: Case, day: float) -> float:
    """The target day (days) must be a finite number of days after the last scan and, as every target day, at most
    ``MAX_HORIZON_DAYS`` (10 years) after it (:meth:`Case.target_day`, the rule the CLI applies to ``--day``)."""
    if not np.isfinite(day):
        raise InputError(None, "day", f"must be a number of days, got {day}")
    last = case.timepoints[-1].day
    if day <= last:
        raise InputError(None, "day", f"target day {day:g} is not after the last scan (day {last:g}) of {case.path}")
    return case.target_day(float(day))


@dataclass(frozen=True)
class _Inputs:
    """The checked inputs of one forecast: the case, the target day (days), the last GTV (bool), the standard plan's
    seed, the brain mask and the barrier (bool, on the case grid, or None)."""

    case: Case
    day: float
    gtv: np.ndarray
    plan: PlanSeed
    brain: np.ndarray | None
    barrier: np.ndarray | None


def _check_request(samples: int, device: str) -> None:
    """``samples`` (at least 1) and ``device`` (one of ``defaults.DEVICES``), refused before any work."""
    if samples < 1:
        raise InputError(None, "samples", f"must be at least 1, got {samples}")
    defaults.check_limit(samples, "samples", None, "samples", "samples")
    if device not in defaults.DEVICES:
        raise InputError(None, "device", f"must be auto, cpu or cuda, got {device!r}")


def _check_scan_count(case: Case, registered: ForecasterEntry) -> None:
    """The case must have the scans the ``registered`` forecaster needs (``min_scans``); the refusal names the
    forecasters that would serve."""
    min_scans = registered.min_scans
    if len(case.timepoints) >= min_scans:
        return
    need = {1: "one scan", 2: "two scans"}.get(min_scans, f"{min_scans} scans")
    fewer = [e.name for e in REGISTRY if e.min_scans <= len(case.timepoints)]
    instead = f"; use {' or '.join(fewer)} with {len(case.timepoints)}" if fewer else ""
    raise InputError(
        case.path,
        "timepoints",
        f"a forecast needs at least {need} with the {registered.name} "
        f"forecaster; the case has {len(case.timepoints)}{instead}",
    )


def _check_barrier(case: Case, barrier: np.ndarray | None) -> np.ndarray | None:
    """The barrier as a bool mask, which must have the case grid's shape; None stays None."""
    if barrier is None:
        return None
    barrier = np.asarray(barrier, dtype=bool)
    if barrier.shape != tuple(case.grid.shape):
        raise InputError(None, "barrier", f"shape {barrier.shape} differs from the case grid {tuple(case.grid.shape)}")
    return barrier


def _load_inputs(
    case: Case | str | Path, day: float, registered: ForecasterEntry, plan: str | None, barrier: np.ndarray | None
) -> _Inputs:
    """Load ``case`` (a manifest path or a case) and check it against the request: enough scans for the forecaster,
    the target day (:func:`check_target_day`), the planning convention, the barrier's shape and a brain mask that
    overlaps the last GTV."""
    case = case if isinstance(case, Case) else load_case(case)
    if case.grid.ndim != 3:
        raise InputError(
            case.reference[1], case.reference[0], f"forecasts need 3D volumes; this case is {case.grid.ndim}D"
        )
    _check_scan_count(case, registered)
    day = check_target_day(case, day)
    last = case.timepoints[-1]
    gtv = case.gtv(last)
    seed_parts = case_plan_seed(case, plan)
    brain = case.brain_mask()
    barrier = _check_barrier(case, barrier)
    if brain is not None and not np.any(gtv & brain):
        raise InputError(
            case.brain_mask_path,
            "brain_mask",
            f"does not overlap the GTV of timepoints[{last.index}] ({last.gtv or last.labels})",
        )
    return _Inputs(case, day, gtv, seed_parts, brain, barrier)


def _capped_growth(inputs: _Inputs, growth: GrowthFit | None, n_bootstrap: int, seed: int) -> GrowthFit:
    """The growth fit (``growth``, or fitted here: :func:`fit_case_growth`) capped at the brain volume (mL)."""
    case, brain = inputs.case, inputs.brain
    if growth is None:
        growth = fit_case_growth(case, n_bootstrap, seed)
    return cap_growth(growth, None if brain is None else float(np.count_nonzero(brain) * case.grid.voxel_volume_ml))


def _forecast_targets(inputs: _Inputs, margin_mm: float, probability: np.ndarray) -> Targets:
    """Both CTVs of the forecast (:func:`build_targets`) around the plan's seed, ranked by ``probability``; without a
    barrier the standard CTV (``margin_mm``, mm) is computed once per case and shared (``Case.derived``)."""
    case, seed_parts, brain = inputs.case, inputs.plan, inputs.brain
    tumour, cavity = seed_parts.tumour, seed_parts.cavity
    standard = (
        None
        if inputs.barrier is not None
        else case.derived(
            ("standard_ctv", case.timepoints[-1].index, float(margin_mm), seed_parts.convention),
            lambda: standard_target(tumour, case.grid.spacing, margin_mm, cavity=cavity, brain_mask=brain),
        )
    )
    return build_targets(
        tumour,
        case.grid.spacing,
        margin_mm,
        score=probability,
        cavity=cavity,
        brain_mask=brain,
        barrier=inputs.barrier,
        standard=standard,
    )


def _forecast(
    inputs: _Inputs,
    forecaster: str,
    output: ForecasterOutput,
    growth: GrowthFit,
    targets: Targets,
    margin_mm: float,
    seed: int,
    samples: int,
    timings: dict[str, float],
    input_shift: InputShift | None = None,
) -> Forecast:
    """The :class:`Forecast` of the checked ``inputs``, the forecaster's ``output``, the growth fit, the CTVs and
    the inputs' distance from the model's training scans."""
    cavity, ml = inputs.plan.cavity, inputs.case.grid.voxel_volume_ml
    return Forecast(
        inputs.case,
        inputs.day,
        forecaster,
        output,
        growth,
        inputs.gtv,
        targets.standard,
        targets.forecast,
        float(margin_mm),
        seed,
        samples,
        timings,
        cavity_ml=0.0 if cavity is None else float(np.count_nonzero(cavity) * ml),
        barrier_used=inputs.barrier is not None,
        forecast_shortfall=targets.forecast_shortfall,
        plan=inputs.plan.convention,
        plan_warning=inputs.plan.warning,
        input_shift=input_shift,
    )


def _input_shift(
    registered: ForecasterEntry, case: Case, output: ForecasterOutput, timings: dict[str, float]
) -> InputShift | None:
    """How far ``case``'s last scan lies from the forecaster's training scans (:mod:`.input_shift`), its time in
    ``timings``; None for a forecaster without a reference, or (with a note in ``output``) when the models folder
    lacks the reference file (a folder of one's own training)."""
    if registered.input_reference is None:
        return None
    t0 = time.perf_counter()
    if not reference_path(registered.input_reference).is_file():
        output.notes.append(
            f"input shift: no {registered.input_reference} in the models folder, so the inputs were not "
            f"compared with {registered.name}'s training scans"
        )
        return None
    shift = assess(case, load_reference(registered.input_reference))
    timings["input_shift_s"] = time.perf_counter() - t0
    return shift


def run_forecast(
    case: Case | str | Path,
    day: float,
    forecaster: str = DEFAULT_FORECASTER,
    *,
    samples: int = defaults.SAMPLES,
    seed: int = defaults.SEED,
    device: str = defaults.DEVICE,
    margin_mm: float = defaults.MARGIN_MM,
    n_bootstrap: int = defaults.N_BOOTSTRAP,
    progress: ProgressFn | None = None,
    growth: GrowthFit | None = None,
    barrier: np.ndarray | None = None,
    settings: Mapping[str, Any] | None = None,
    plan: str | None = AUTO,
) -> Forecast:
    """Forecast ``case`` at ``day`` (days) with the named forecaster and build both CTVs.

    ``samples`` draws of the growth model's bootstrap distribution give the uncertainty; ``seed`` fixes
    every random choice. ``barrier`` (bool, on the case grid: ventricles, falx, ...) makes the standard margin
    geodesic and keeps both CTVs off it. ``plan`` is the planning convention (``auto``, ``estro-eano``, ``flair``;
    :mod:`.targets.standard_plan`): both CTVs start from its seed on the last scan (tumour core or whole GTV, plus
    the resection cavity, label 4) with holes filled (:mod:`.targets.volumes`). ``growth``: a fit of this case's GTV
    volumes made earlier with :func:`fit_case_growth` and the same ``seed`` and ``n_bootstrap`` (an evaluation shares
    one fit across forecasters and targets);
    None fits it here. ``progress(fraction, message)`` receives the fraction (0-1) of the whole forecast
    done and a short message per step. ``settings`` (e.g. ``{"outcome": "responder"}``) go to the forecaster
    (``ForecasterEntry.settings``). Bad settings raise an InputError naming the parameter (``day``: after the last
    scan, at most 10 years; ``samples``, ``device``, ``forecaster``, ``plan``, the setting; a convention the planning
    scan cannot serve names the case's labels field); the commands map those names to their flags."""
    say = progress or no_progress
    t0 = time.perf_counter()
    _check_request(samples, device)
    registered = entry(forecaster)
    model = registered.create(**dict(settings or {}))
    say(0.0, "loading case")
    inputs = _load_inputs(case, day, registered, plan, barrier)
    timings = {"load_s": time.perf_counter() - t0}

    say(0.05, "fitting the growth model")
    t1 = time.perf_counter()
    growth = _capped_growth(inputs, growth, n_bootstrap, seed)
    timings["growth_s"] = time.perf_counter() - t1

    say(0.2, f"running the {forecaster} forecaster")
    t2 = time.perf_counter()
    request = ForecastRequest(inputs.case, inputs.day, growth, samples, seed, device)
    output = model.predict(request, lambda fraction, message: say(0.2 + 0.7 * min(max(fraction, 0.0), 1.0), message))
    timings["forecaster_s"] = time.perf_counter() - t2

    say(0.9, "building target volumes")
    t3 = time.perf_counter()
    targets = _forecast_targets(inputs, margin_mm, output.probability)
    timings["ctv_s"] = time.perf_counter() - t3
    shift = _input_shift(registered, inputs.case, output, timings)
    timings["total_s"] = time.perf_counter() - t0
    say(1.0, "forecast done")
    return _forecast(inputs, forecaster, output, growth, targets, margin_mm, seed, samples, timings, shift)
