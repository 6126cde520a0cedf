"""The ``fisher-kpp-tail`` forecaster: from the last (planning) scan alone, the tumour-cell density the Fisher-KPP
model puts beyond the visible tumour, along white and grey matter
(:mod:`gliomaforecast.forecasters.fisher_kpp.infiltration`, Unkelbach et al. 2014). The biophysical baseline of the
``recurrence`` protocol: its map ranks the iso-volumetric forecast CTV, which then reaches farther into white matter
than into grey matter and not across CSF.

1. Anatomy: f = D / D_w from the case's tissue maps (white matter 1, grey matter 0.1, 0 where wm + gm < 0.3), as the
   ``fisher-kpp`` forecaster (:func:`fisher_kpp.relative_diffusivity`; without tissue maps: homogeneous inside the
   brain mask, and the map is then the Euclidean margin's).
2. T: the white-matter-equivalent distance (mm) from the last GTV by fast marching.
3. Map ("probability" output): u = u_c exp(-T / lambda) outside the GTV and 1 inside it, u_c = 0.16 (the FLAIR
   edge), lambda = sqrt(D_w / rho) = 1.73 mm (the literature prior of ``fisher_kpp_fit``). A modelled cell density,
   not a calibrated probability of tumour at the target day: the target day does not enter.
4. Uncertainty: the per-voxel standard deviation of u over ``samples`` values of lambda drawn log-uniformly from
   0.77-3.9 mm (D_w / rho 0.6-15 mm^2, the ranges cited in docs/cohort.md; seeded). The ranking, and so the CTV,
   does not depend on lambda.
No predicted image, no displacement field.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..base import ForecasterOutput, ForecastRequest, ProgressFn
from .fit import LENGTH_PRIOR, U_VISIBLE
from .forecaster import relative_diffusivity
from .infiltration import tail_density, tissue_travel_distance

LENGTH_RANGE_MM = (float(np.sqrt(0.6)), float(np.sqrt(15.0)))
"""lambda = sqrt(D_w / rho) range for the uncertainty samples, mm."""


class FisherKppTailForecaster:
    """The Fisher-KPP infiltration tail beyond the last GTV, along the anatomy (one scan)."""

    name = "fisher-kpp-tail"

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, last = request.case, request.last
        if request.samples < 1:
            raise InputError(None, "samples", f"must be at least 1, got {request.samples}")
        gtv = case.gtv(last)  # never empty: the case loader refuses an empty GTV
        progress(0.0, "anatomy: relative diffusivity from the tissue maps")
        f, source = case.derived(("fisher_kpp_diffusivity",), lambda: relative_diffusivity(request))
        progress(0.2, "white-matter-equivalent distance by fast marching")
        travel = case.derived(
            ("fisher_kpp_tail_distance", last.index), lambda: tissue_travel_distance(gtv, f, request.spacing)
        )
        progress(0.8, "infiltration density")
        density = tail_density(travel, LENGTH_PRIOR, U_VISIBLE)
        rng = np.random.default_rng(request.seed)
        log_lo, log_hi = np.log(LENGTH_RANGE_MM)
        lengths = np.exp(rng.uniform(log_lo, log_hi, size=request.samples))
        draws = np.stack([tail_density(travel, float(length), U_VISIBLE) for length in lengths])
        uncertainty = draws.std(axis=0).astype(np.float32)
        progress(1.0, "done")
        reach = np.isfinite(travel) & ~gtv
        notes = [
            f"fisher-kpp-tail: cell density beyond the visible tumour of day {last.day:g}, u = {U_VISIBLE:g} "
            f"exp(-T / {LENGTH_PRIOR:.2f} mm), T the white-matter-equivalent distance (Unkelbach et al. 2014); "
            f"anatomy: {source}; the target day does not enter",
            f"fisher-kpp-tail: uncertainty = SD over {request.samples} lambda draws in "
            f"{LENGTH_RANGE_MM[0]:.2f}-{LENGTH_RANGE_MM[1]:.2f} mm; {np.count_nonzero(~reach & ~gtv)} voxels "
            f"cannot be reached (behind CSF or outside the brain)",
        ]
        return ForecasterOutput(probability=density, uncertainty=uncertainty, notes=notes)
