"""The Fisher-KPP forecaster: the last GTV grown by reaction-diffusion calibrated on the patient's own scans.

1. Anatomy: f = D / D_w per voxel from the case's tissue maps (white matter 1, grey matter 0.1, CSF 0),
   else 1 inside the brain mask (or everywhere); see
   :func:`gliomaforecast.forecasters.fisher_kpp.solver.tissue_diffusivity`.
2. Calibration (:func:`gliomaforecast.forecasters.fisher_kpp.fit.calibrate`): the white-matter front velocity
   v = 2 sqrt(D_w rho) (mm/day) fitted with the solver to the last two scans, D_w / rho from the literature
   prior; v clipped at 0 for a shrinking tumour.
3. Forecast: the last GTV as a travelling-wave density (u = u_c = 0.16 on its boundary), integrated over the
   horizon (days) on a crop around the tumour; the tumour at the target day is {u >= u_c}, and the
   probability the logistic map (``sdf.tumor_probability``) of its signed distance (mm).
4. Uncertainty: ``samples`` velocities drawn from N(v, sigma_v) (seeded, clipped at 0) with D_w / rho fixed;
   in dimensionless time rho t every draw is one snapshot of the same solve. The per-voxel standard
   deviation of their probability maps.
No predicted image, no displacement field.
"""

from __future__ import annotations

import numpy as np

from ... import sdf
from ...errors import InputError
from ..base import ForecasterOutput, ForecastRequest, ProgressFn
from .fit import U_VISIBLE, Calibration, calibrate, seeded_density
from .solver import Integrator, crop_box, tissue_diffusivity

TAU_STEP = 0.25
"""Largest step of dimensionless time rho t of the forecast solve."""


def relative_diffusivity(request: ForecastRequest) -> tuple[np.ndarray, str]:
    """f = D / D_w (0-1, float32) on the case grid and its source, from the case's tissue maps and brain mask.
    A white-matter map without a grey-matter map (or the reverse) is an InputError naming the missing field."""
    case = request.case
    wm, gm, csf = (case.tissue(name) for name in ("wm", "gm", "csf"))
    if (wm is None) != (gm is None):
        missing = "tissue.gm" if gm is None else "tissue.wm"
        raise InputError(case.path, missing, "the fisher-kpp forecaster needs both wm and gm tissue maps (or neither)")
    return tissue_diffusivity(1.0, case.grid.shape, wm=wm, gm=gm, csf=csf, brain=case.brain_mask())


def _check(request: ForecastRequest) -> None:
    """InputErrors: fewer than two prior scans, fewer than one sample."""
    if len(request.case.timepoints) < 2:
        raise InputError(request.case.path, "timepoints", "the fisher-kpp forecaster needs at least two prior scans")
    if request.samples < 1:
        raise InputError(None, "samples", f"must be at least 1, got {request.samples}")


def _calibration(request: ForecastRequest, gtvs: list[np.ndarray], f: np.ndarray, progress: ProgressFn) -> Calibration:
    """The calibration on the last two scans' ``gtvs`` and the anatomy ``f`` (D / D_w), cached on the case."""
    case = request.case
    return case.derived(
        ("fisher_kpp_calibration", *(tp.index for tp in case.timepoints[-2:])),
        lambda: calibrate(
            gtvs,
            [tp.day for tp in case.timepoints[-2:]],
            f,
            request.spacing,
            rt_start_day=case.rt_start_day,
            progress=lambda x, m: progress(0.05 + 0.35 * x, m),
        ),
    )


def _grow(
    gtv: np.ndarray,
    f: np.ndarray,
    taus: np.ndarray,
    length: float,
    spacing: tuple[float, ...],
    progress: ProgressFn,
) -> tuple[list[np.ndarray], int]:
    """(the visible regions {u >= u_c} (bool, case grid) at the dimensionless times ``taus`` (rho t), in their
    order; the solver's steps): one solve from ``gtv`` as a travelling-wave density with infiltration length
    ``length`` (mm) on the anatomy ``f`` (D / D_w), on a crop around the GTV that the fastest time cannot leave."""
    reach = float(taus.max()) * 2.0 * length  # mm: the fastest draw's white-matter travel
    box = crop_box(gtv, spacing, reach + 4.0 * length + 2.0 * max(spacing))
    f_box = f[box]
    u0 = seeded_density(gtv[box], sdf.signed_distance(gtv[box], spacing), f_box > 0, length)
    run = Integrator(u0, (length**2 * f_box).astype(np.float32), spacing, 1.0, dt_max=TAU_STEP)
    regions: dict[int, np.ndarray] = {}
    for rank, i in enumerate(np.argsort(taus, kind="stable")):
        u = run.state_at(float(taus[i]))
        region = np.zeros(gtv.shape, dtype=bool)
        region[box] = u >= U_VISIBLE
        regions[int(i)] = region
        progress(0.4 + 0.4 * (rank + 1) / len(taus), f"growth to rho t = {taus[i]:.2f} ({rank + 1} of {len(taus)})")
    return [regions[i] for i in range(len(taus))], run.steps


def _probability_maps(
    regions: list[np.ndarray], spacing: tuple[float, ...], progress: ProgressFn
) -> tuple[np.ndarray, np.ndarray]:
    """(the probability map of ``regions[0]``; the per-voxel SD of the maps of the others, the samples)."""
    cache: dict[bytes, np.ndarray] = {}  # equal regions (e.g. draws clipped at 0) share one map

    def probability_of(region: np.ndarray) -> np.ndarray:
        key = np.packbits(region).tobytes()
        if key not in cache:
            cache[key] = sdf.tumor_probability(region, spacing)
        return cache[key]

    probability = probability_of(regions[0])
    maps = []
    for i, region in enumerate(regions[1:]):
        maps.append(probability_of(region))
        progress(0.8 + 0.2 * (i + 1) / (len(regions) - 1), f"uncertainty: sample {i + 1} of {len(regions) - 1}")
    return probability, np.stack(maps).std(axis=0).astype(np.float32)


def _notes(request: ForecastRequest, cal: Calibration, source: str, steps: int, forecast: np.ndarray) -> list[str]:
    """The forecast's notes: the parameters, their fit, the anatomy, the solve (``steps``) and the ``forecast``
    region's volume (mL), then the calibration's notes."""
    case, length, fit = request.case, cal.length_mm, cal.fit
    forecast_ml = float(np.count_nonzero(forecast)) * case.grid.voxel_volume_ml
    notes = [
        f"fisher-kpp: D_w = {cal.d_white:.4f} mm^2/day, rho = {cal.rho:.4f} /day, v = 2 sqrt(D_w rho) = "
        f"{cal.v:.4f} mm/day ({cal.v * 365.25:.1f} mm/yr, sigma {cal.sigma_v:.4f} mm/day), D_w/rho = "
        f"{length**2:.2f} mm^2 (literature prior), infiltration length sqrt(D_w/rho) = {length:.2f} mm",
        f"fisher-kpp: v fitted by the solver on days {cal.first_day:g}-{cal.last_day:g} (GTV {fit.earlier_ml:.1f} -> "
        f"{fit.later_ml:.1f} mL, model {fit.model_ml:.1f} mL, Dice {fit.dice:.2f}); boundary-displacement "
        f"estimate {cal.v_boundary:.4f} mm/day",
        f"fisher-kpp: anatomy from {source}; visible threshold u_c = {U_VISIBLE:g}; {steps} steps over "
        f"{request.horizon_days:g} days; forecast {forecast_ml:.1f} mL; uncertainty from {request.samples} velocity "
        f"draws (seed {request.seed})",
    ] + cal.notes
    if len(case.timepoints) > 2:
        notes.append(f"fisher-kpp: calibrated on the last two of {len(case.timepoints)} scans")
    return notes


class FisherKppForecaster:
    """Fisher-KPP growth of the last GTV with the front velocity fitted to the last two scans."""

    name = "fisher-kpp"

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case = request.case
        _check(request)
        progress(0.0, "anatomy: relative diffusivity from the tissue maps")
        f, source = case.derived(("fisher_kpp_diffusivity",), lambda: relative_diffusivity(request))
        gtvs = [case.gtv(tp) for tp in case.timepoints[-2:]]
        cal = _calibration(request, gtvs, f, progress)
        velocities = cal.draw_velocities(request.samples, request.seed)
        taus = np.concatenate([[cal.v], velocities]) * request.horizon_days / (2.0 * cal.length_mm)  # rho t
        regions, steps = _grow(gtvs[-1], f, taus, cal.length_mm, request.spacing, progress)
        probability, uncertainty = _probability_maps(regions, request.spacing, progress)
        notes = _notes(request, cal, source, steps, regions[0])
        progress(1.0, "done")
        return ForecasterOutput(probability=probability, uncertainty=uncertainty, notes=notes)
