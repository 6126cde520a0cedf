"""Forecast orchestration: a case + a target day -> probability map, uncertainty, image, CTVs, growth.

One :class:`Forecaster` interface; forecasters register by name in :data:`FORECASTERS`. The
orchestration loads and checks the case, fits the growth model to the GTV volumes (mL), runs the
forecaster, and builds both target volumes: the standard CTV (15 mm margin on the last GTV, inside the
brain mask) and the iso-volumetric forecast CTV (the same voxel count, highest forecast probability
first). Time is in days since the case's day 0, volumes in mL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from . import ctv, sdf
from .burden import burden_from_case
from .case import Case, Timepoint, load_case
from .errors import InputError
from .growth_fit import GrowthFit, fit_growth

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class ForecastRequest:
    """What a forecaster is asked: the case, the target day (days), the fitted growth model of the GTV
    volume (mL), how many samples to draw, the seed and the device ('auto', 'cpu' or 'cuda')."""

    case: Case
    target_day: float
    growth: GrowthFit
    samples: int = 8
    seed: int = 0
    device: str = "auto"

    @property
    def last(self) -> Timepoint:
        """The case's last scan (the forecast starts from it)."""
        return self.case.timepoints[-1]

    @property
    def spacing(self) -> tuple[float, ...]:
        """The case grid's spacing (mm, z, y, x)."""
        return self.case.grid.spacing


@dataclass
class ForecasterOutput:
    """A forecaster's result on the case grid: probability (float32 in [0, 1]), uncertainty (float32,
    standard deviation of the probability over samples), predicted FLAIR (float32), displacement
    (z, y, x, 3; mm, index order, pull convention: see ``deformation``), and the models it ran."""

    probability: np.ndarray
    uncertainty: np.ndarray
    image: np.ndarray
    displacement: np.ndarray
    models: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Forecaster(Protocol):
    """Anything with a ``name`` and ``predict(request, progress) -> ForecasterOutput``."""

    name: str

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput: ...


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


def _forecasters() -> dict[str, Callable[[], Forecaster]]:
    from .forecaster_evolution import EvolutionForecaster
    from .forecaster_persistence import PersistenceForecaster
    return {"evolution-field": lambda: EvolutionForecaster("field"),
            "evolution": lambda: EvolutionForecaster("growth"),
            "persistence": PersistenceForecaster}


FORECASTER_NAMES = ("evolution-field", "evolution", "persistence")
DEFAULT_FORECASTER = "evolution-field"


def get_forecaster(name: str) -> Forecaster:
    """The registered forecaster ``name``; an unknown name is an InputError listing the known ones."""
    registry = _forecasters()
    if name not in registry:
        raise InputError("--forecaster", None, f"unknown forecaster '{name}'; choose from {', '.join(registry)}")
    return registry[name]()


def probability_for_volume(phi: np.ndarray, volume_ml: float, spacing: Sequence[float],
                           allowed: np.ndarray | None = None) -> np.ndarray:
    """Re-level a (warped) signed distance ``phi`` (mm) so that its tumor region holds ``volume_ml`` mL:
    the voxels with the lowest ``phi`` inside ``allowed`` (iso-volumetric selection of ``ctv``), at least
    one voxel and never all of them; return the logistic probability of that region's exact signed
    distance (mm)."""
    phi = np.asarray(phi, dtype=np.float64)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    room = int(phi.size if allowed is None else np.count_nonzero(allowed))
    n = int(np.clip(round(volume_ml / voxel_ml), 1, min(room, phi.size - 1)))
    mask = ctv.isovolumetric_ctv(phi.max() + 1.0 - phi, n, spacing, brain_mask=allowed)
    return sdf.tumor_probability(mask, spacing)


def forecast_tumor_ml(fc: "Forecast") -> float:
    """Volume (mL) of the forecast tumor: the voxels with probability above ``sdf.TUMOR_THRESHOLD`` (0.8)."""
    return float(np.count_nonzero(fc.output.probability > sdf.TUMOR_THRESHOLD) * fc.case.grid.voxel_volume_ml)


def check_target_day(case: Case, day: float) -> float:
    """The target day must be a finite number of days after the last scan."""
    if not np.isfinite(day):
        raise InputError("--day", None, f"must be a number of days, got {day}")
    last = case.timepoints[-1].day
    if day <= last:
        raise InputError("--day", None, f"target day {day:g} is not after the last scan (day {last:g}) of {case.path}")
    return float(day)


def run_forecast(case: Case | str | Path, day: float, forecaster: str = DEFAULT_FORECASTER, *,
                 samples: int = 8, seed: int = 0, device: str = "auto", margin_mm: float = ctv.DEFAULT_MARGIN_MM,
                 n_bootstrap: int = 100, progress: ProgressFn | None = None) -> Forecast:
    """Forecast ``case`` at ``day`` (days) with the named forecaster and build both CTVs.

    ``samples`` draws of the growth model's bootstrap distribution give the uncertainty; ``seed`` fixes
    every random choice. ``progress`` receives a short message per step."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if samples < 1:
        raise InputError("--samples", None, f"must be at least 1, got {samples}")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError("--device", None, f"must be auto, cpu or cuda, got {device!r}")
    model = get_forecaster(forecaster)
    say("loading case")
    case = case if isinstance(case, Case) else load_case(case)
    if len(case.timepoints) < 2:
        raise InputError(case.path, "timepoints", "a forecast needs at least two scans")
    day = check_target_day(case, day)
    last = case.timepoints[-1]
    gtv = case.gtv(last)
    brain = case.brain_mask()
    if brain is not None and not np.any(gtv & brain):
        raise InputError(case.brain_mask_path, "brain_mask",
                         f"does not overlap the GTV of timepoints[{last.index}] ({last.gtv or last.labels})")
    days, volumes = burden_from_case(case)
    timings["load_s"] = time.perf_counter() - t0

    say("fitting the growth model")
    t1 = time.perf_counter()
    growth = fit_growth(days, volumes, case.rt_start_day, n_bootstrap=n_bootstrap, seed=seed,
                        source=str(case.path))
    timings["growth_s"] = time.perf_counter() - t1

    say(f"running the {forecaster} forecaster")
    t2 = time.perf_counter()
    request = ForecastRequest(case, day, growth, samples, seed, device)
    output = model.predict(request, say)
    timings["forecaster_s"] = time.perf_counter() - t2

    say("building target volumes")
    t3 = time.perf_counter()
    spacing = case.grid.spacing
    standard = ctv.standard_ctv(gtv, spacing, margin_mm, brain_mask=brain)
    forecast_ctv = ctv.isovolumetric_ctv(output.probability, int(standard.sum()), spacing, gtv=gtv,
                                         brain_mask=brain)
    timings["ctv_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0
    return Forecast(case, day, forecaster, output, growth, gtv, standard, forecast_ctv, float(margin_mm), seed,
                    samples, timings)
