"""The numerics of the module's long console methods as pure functions on plain data, safe in a worker thread.

Each ``compute_*`` takes numpy arrays on a :class:`~gliomaforecast.geometry.Grid`, days (days), distances (mm)
and settings gathered from MRML on the main thread by :class:`GliomaForecastLib.logic.ForecastLogic`, calls the
core ``gliomaforecast`` functions, and returns a frozen result object that ``ForecastLogic`` turns into MRML
nodes on the main thread. This module imports neither slicer nor vtk: nothing here can touch the scene.

Every function takes ``progress(fraction, message)`` and ``cancel`` (a ``threading.Event``); it reports
fractions in [0, :data:`BUILD_FRACTION`) and raises :class:`~GliomaForecastLib.progress.Cancelled` at the next
step once ``cancel`` is set (a core call that is running, e.g. the bootstrap fit, finishes first).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from gliomaforecast import defaults, sdf
from gliomaforecast.targets import standard_plan
from gliomaforecast.io.case import Case
from gliomaforecast.deformation import to_physical
from gliomaforecast.errors import InputError
from gliomaforecast.forecast import run_forecast
from gliomaforecast.forecasters.base import ForecasterOutput
from gliomaforecast.geometry import Grid
from gliomaforecast.growth import GrowthFit, fit_growth
from gliomaforecast.targets.volumes import build_targets

from .progress import ProgressCallback, Steps

BUILD_FRACTION = 0.9  # progress at which the compute part ends and building the MRML nodes begins
TARGET_SEGMENTS = ("GTV", "CTV standard", "CTV forecast")


@dataclass(frozen=True)
class ProbabilityResult:
    """``probability`` (float32 in [0, 1]) on ``grid``; ``beta`` in 1/mm, ``mu`` in mm."""

    probability: np.ndarray
    grid: Grid
    beta: float
    mu: float


def compute_probability(mask: np.ndarray, grid: Grid, beta: float = defaults.BETA_PER_MM, mu: float = defaults.MU_MM,
                        progress: Optional[ProgressCallback] = None,
                        cancel: Optional[threading.Event] = None) -> ProbabilityResult:
    """Tumor-presence probability ``gliomaforecast.sdf.tumor_probability`` of a bool ``mask`` on ``grid``."""
    Steps(progress, cancel).step(0.0, "Signed distance and probability")
    probability = sdf.tumor_probability(mask, grid.spacing, beta=beta, mu=mu)
    return ProbabilityResult(probability, grid, float(beta), float(mu))


@dataclass(frozen=True)
class GrowthCurve:
    """A growth fit sampled for a table: ``days`` (days, the observed days included), the bootstrap ``median``,
    ``lower`` (2.5%) and ``upper`` (97.5%) burdens and ``observed`` burdens (NaN between scans), all in mL;
    ``observed_days`` / ``observed_burdens`` are the scans alone."""

    days: np.ndarray
    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    observed: np.ndarray
    observed_days: np.ndarray
    observed_burdens: np.ndarray


def growth_curve(fit: GrowthFit, until_day: Optional[float] = None) -> GrowthCurve:
    """The median curve and 95% band of ``fit`` from its first day to ``until_day`` (days; default: the last
    day plus half the observed span) on 201 days plus the observed days, and the observed burdens (mL)."""
    days, burdens = np.asarray(fit.days, dtype=float), np.asarray(fit.burdens, dtype=float)
    end = float(until_day) if until_day is not None else days[-1] + 0.5 * (days[-1] - days[0])
    curve_days = np.union1d(np.linspace(days[0], max(end, days[-1]), 201), days)
    median, lower, upper = (np.asarray(a, dtype=float) for a in fit.predict(curve_days))
    observed = np.full(curve_days.shape, np.nan)
    observed[np.searchsorted(curve_days, days)] = burdens
    return GrowthCurve(curve_days, median, lower, upper, observed, days, burdens)


@dataclass(frozen=True)
class GrowthResult:
    """The core ``GrowthFit`` and its sampled :class:`GrowthCurve`."""

    fit: GrowthFit
    curve: GrowthCurve


def compute_growth(days: np.ndarray, burdens_ml: np.ndarray, rt_start_day: Optional[float] = None,
                   n_bootstrap: int = 100, noise: float = 0.10, seed: int = 0, until_day: Optional[float] = None,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[threading.Event] = None) -> GrowthResult:
    """``gliomaforecast.growth.fit_growth`` of ``burdens_ml`` (mL) on increasing ``days`` (days) with
    ``n_bootstrap`` refits, then its curve up to ``until_day`` (see :func:`growth_curve`)."""
    steps = Steps(progress, cancel)
    steps.step(0.0, f"Fitting the growth model ({n_bootstrap} bootstrap refits)")
    fit = fit_growth(np.asarray(days, dtype=float), np.asarray(burdens_ml, dtype=float), rt_start_day=rt_start_day,
                     n_bootstrap=n_bootstrap, noise=noise, seed=seed)
    steps.step(0.8, "Sampling the growth curve")
    return GrowthResult(fit, growth_curve(fit, until_day))


@dataclass(frozen=True)
class TargetsResult:
    """Bool masks on ``grid`` for the segments "GTV" (the planning scan's GTV), "CTV standard" and "CTV forecast"
    (in that order); ``margin_mm`` in mm; ``plan``, the planning convention the CTVs were grown by
    (``gliomaforecast.targets.standard_plan.CONVENTIONS``), and ``plan_warning``, why ``auto`` fell back to ``flair`` (one
    line) or None."""

    grid: Grid
    masks: dict
    margin_mm: float
    plan: str
    plan_warning: Optional[str] = None


def plan_seed(gtv: np.ndarray, labels: Optional[np.ndarray], plan: str, source: str) -> standard_plan.PlanSeed:
    """``gliomaforecast.targets.standard_plan.plan_seed`` of the planning scan's ``gtv`` (bool) and BraTS ``labels`` (int,
    or None) by the convention ``plan``; a convention they cannot serve is a one-line ValueError that begins with
    ``source`` (what names the scan to the user)."""
    try:
        return standard_plan.plan_seed(gtv, labels, plan)
    except standard_plan.PlanError as exc:
        raise ValueError(f"{source}: {exc}") from None


def compute_targets(gtv: np.ndarray, grid: Grid, score: Optional[np.ndarray] = None,
                    margin_mm: float = defaults.MARGIN_MM,
                    brain: Optional[np.ndarray] = None, barrier: Optional[np.ndarray] = None,
                    progress: Optional[ProgressCallback] = None, cancel: Optional[threading.Event] = None, *,
                    labels: Optional[np.ndarray] = None, plan: str = standard_plan.AUTO,
                    source: str = "the planning scan") -> TargetsResult:
    """Both CTVs by the rule of ``gliomaforecast.targets.volumes`` (the same as the forecast and the ``ctv``
    command), grown from the seed of the planning convention ``plan`` (``gliomaforecast.targets.standard_plan.plan_seed``
    of ``gtv`` and the BraTS ``labels``, int, or None): CTV standard, ``margin_mm`` around the seed (tumour core or
    GTV, + the resection cavity) inside ``brain``, geodesic around ``barrier``; CTV forecast, as many voxels ranked by
    ``score`` (without it, the seed's own probability map), off the barrier; no interior holes. All arrays on
    ``grid``. A convention the labels cannot serve is a one-line ValueError that begins with ``source``
    (:func:`plan_seed`)."""
    steps = Steps(progress, cancel)
    steps.step(0.0, "Standard margin and iso-volumetric forecast CTVs")
    seed = plan_seed(gtv, labels, plan, source)
    targets = build_targets(seed.tumour, grid.spacing, margin_mm, score=score, cavity=seed.cavity, brain_mask=brain,
                            barrier=barrier)
    steps.step(0.5, "Target volumes drawn")
    return TargetsResult(grid, dict(zip(TARGET_SEGMENTS, (gtv, targets.standard, targets.forecast))),
                         float(margin_mm), seed.convention, seed.warning)


@dataclass(frozen=True)
class ForecastInputs:
    """A forecast request as plain data on one ``grid`` (the last scan's): per scan (increasing ``days``, days)
    the FLAIR (float32) and the GTV (bool); optional ``brain`` (bool) and ``dose`` (Gy, float32); the target
    ``day`` (days); ``rt_start_day`` (days) or None; the settings passed to ``run_forecast`` unchanged; ``images``:
    per scan, the other sequences by modality (``t1ce``, ``t1``, ``t2``; float32), empty when none;
    ``forecaster_settings``: (name, value) pairs for the forecaster (``run_forecast(settings=...)``, e.g. the
    latent-diffusion ``outcome``); ``labels``: the planning (last) scan's BraTS label map (int16) or None; ``plan``:
    the planning convention of the standard plan (``gliomaforecast.targets.standard_plan.CHOICES``)."""

    grid: Grid
    days: Tuple[float, ...]
    flairs: Tuple[np.ndarray, ...]
    gtvs: Tuple[np.ndarray, ...]
    patient_id: str
    day: float
    forecaster: str
    rt_start_day: Optional[float] = None
    brain: Optional[np.ndarray] = None
    dose: Optional[np.ndarray] = None
    barrier: Optional[np.ndarray] = None
    images: Tuple[Dict[str, np.ndarray], ...] = ()
    samples: int = defaults.SAMPLES
    seed: int = defaults.SEED
    margin_mm: float = defaults.MARGIN_MM
    n_bootstrap: int = defaults.N_BOOTSTRAP
    device: str = defaults.DEVICE
    forecaster_settings: Tuple[Tuple[str, Any], ...] = ()
    labels: Optional[np.ndarray] = None
    plan: str = standard_plan.AUTO


@dataclass(frozen=True)
class ForecastResult:
    """What :func:`compute_forecast` returns: the forecaster's ``output`` on the input grid, the
    ``displacement_lps`` (z, y, x, 3; physical LPS mm, pull convention; None when the forecaster gives no field), the ``growth`` fit and its ``curve`` up
    to the target day, the ``targets``, the core's ``timings`` (s) and ``input_shift_warning``: the line saying the
    inputs lie far from the forecaster's training scans, or None (``gliomaforecast.input_shift``)."""

    output: ForecasterOutput
    displacement_lps: Optional[np.ndarray]
    growth: GrowthFit
    curve: GrowthCurve
    targets: TargetsResult
    timings: dict
    input_shift_warning: Optional[str] = None


def compute_forecast(inputs: ForecastInputs, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[threading.Event] = None) -> ForecastResult:
    """``gliomaforecast.forecast.run_forecast`` on ``inputs``, held in memory as a ``Case.from_arrays`` (no files).
    The core's progress (fraction, message) is scaled to [0, 0.8]; every report is a cancellation point."""
    steps = Steps(progress, cancel)
    steps.step(0.0, "Preparing the case")
    grid = inputs.grid
    others = inputs.images or tuple({} for _ in inputs.flairs)
    case = Case.from_arrays(grid, inputs.days, inputs.gtvs,
                            images=[{"flair": f, **extra} for f, extra in zip(inputs.flairs, others)],
                            patient_id=inputs.patient_id, rt_start_day=inputs.rt_start_day, dose=inputs.dose,
                            brain_mask=inputs.brain, labels=[None] * (len(inputs.gtvs) - 1) + [inputs.labels])
    result = run_forecast(case, float(inputs.day), inputs.forecaster, samples=inputs.samples,
                          seed=inputs.seed, device=inputs.device, margin_mm=inputs.margin_mm,
                          n_bootstrap=inputs.n_bootstrap, barrier=inputs.barrier,
                          settings=dict(inputs.forecaster_settings), plan=inputs.plan,
                          progress=lambda fraction, message: steps.step(0.8 * fraction, message))
    steps.step(0.85, "Growth curve and displacement")
    targets = TargetsResult(grid, dict(zip(TARGET_SEGMENTS, (result.gtv, result.ctv_standard, result.ctv_forecast))),
                            float(inputs.margin_mm), result.plan, result.plan_warning)
    displacement = result.output.displacement
    return ForecastResult(result.output, None if displacement is None else to_physical(displacement, grid),
                          result.growth,
                          growth_curve(result.growth, float(inputs.day)), targets, dict(result.timings),
                          shift.warning(inputs.forecaster) if (shift := result.input_shift) and shift.flagged else None)


# --- preparing the scans (registration onto the planning scan, brain mask and tissue maps) ------------------------

VolumeOnGrid = tuple[np.ndarray, Grid]


@dataclass(frozen=True)
class PrepareInputs:
    """A "Prepare" request as plain data: per scan, in time order (the first is the planning scan), its ``days``
    (days) and ``volumes`` ``{key: (array (z, y, x), its own grid, is_label)}`` with ``key`` a modality (flair,
    t1ce, t1, t2, adc), ``gtv`` (uint8 mask) or ``labels`` (BraTS label map), each on the grid it was read on;
    ``names``: per scan, ``{key: the node's name}`` and ``"scan"``: how the scan is named to the user (errors and
    progress lines say this instead of ``timepoints[i]``); ``grid``: the planning grid; optional ``brain`` (bool),
    ``tissue`` ((name, (array, grid)) pairs, name in wm, gm, csf) and ``dose`` (Gy) in the planning frame, each on
    its own grid; ``register`` (rigid, affine, none) and ``template`` (sri24, mni152) as the core takes them."""

    grid: Grid
    days: tuple[float, ...]
    volumes: tuple[dict[str, tuple[np.ndarray, Grid, bool]], ...]
    names: tuple[dict[str, str], ...]
    brain: Optional[VolumeOnGrid] = None
    tissue: tuple[tuple[str, VolumeOnGrid], ...] = ()
    dose: Optional[VolumeOnGrid] = None
    register: str = "rigid"
    template: str = "sri24"


_TIMEPOINT = re.compile(r"timepoints\[(\d+)\](?:\.images\.(\w+)|\.(gtv|labels)|\.images)?")


def scan_names(text: Optional[str], names: tuple[dict[str, str], ...]) -> Optional[str]:
    """``text`` with the core's ``timepoints[i]`` (``.images.<modality>``, ``.gtv``, ``.labels``) replaced by the
    node (or the scan) it stands for in ``names`` (:class:`PrepareInputs`)."""
    if text is None:
        return None

    def name(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index >= len(names):
            return match.group(0)
        key = match.group(2) or match.group(3)
        own = names[index]
        return own.get(key, own.get("scan", match.group(0))) if key else own.get("scan", match.group(0))

    return _TIMEPOINT.sub(name, text)


def compute_prepare(inputs: PrepareInputs, progress: Optional[ProgressCallback] = None,
                    cancel: Optional[threading.Event] = None) -> Any:
    """``gliomaforecast.preparation.prepare.prepare_sessions`` on ``inputs``: every later scan registered onto the
    planning scan (the first) and resampled onto ``inputs.grid``, the brain mask and tissue maps derived where not
    given. Each line the core reports is a step (a cancellation point; fractions up to 0.85). Returns the core's
    ``Prepared``. An InputError (a scan that will not register: its quality stated) names the scan's node instead of
    ``timepoints[i]``."""
    from gliomaforecast.preparation.prepare import SessionInput, prepare_sessions

    steps = Steps(progress, cancel)
    steps.step(0.0, "Reading the scans")
    expected = len(inputs.days) + 1  # a registration per later scan, the anatomy, reading
    done = [1]

    def report(line: str) -> None:
        steps.step(min(0.85, 0.85 * done[0] / expected), scan_names(line, inputs.names) or line)
        done[0] += 1

    sessions = [SessionInput(i, float(day), dict(volumes))
                for i, (day, volumes) in enumerate(zip(inputs.days, inputs.volumes))]
    try:
        prepared = prepare_sessions(sessions, inputs.grid, brain=inputs.brain, tissue=dict(inputs.tissue) or None,
                                    dose=inputs.dose, register=inputs.register, template=inputs.template,
                                    progress=report)
    except InputError as exc:
        raise InputError(scan_names(exc.source, inputs.names), scan_names(exc.field, inputs.names),
                         scan_names(exc.message, inputs.names) or exc.message) from None
    steps.step(0.87, "Prepared: every scan on the planning grid")
    return prepared
