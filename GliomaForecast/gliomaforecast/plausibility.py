"""Warnings for implausible or unvalidated forecasts, carried by forecast.json (``warnings``), the command's summary
and the report.

A forecast is flagged when:

- its tumour volume (phi <= 0, inside the brain) or the growth model's median exceeds
  :data:`BRAIN_FRACTION_WARNING` (50%) of the brain mask's volume, or the growth model's 95% band reaches the
  brain volume, where it is capped (:func:`gliomaforecast.growth.checks.cap_growth`; without a brain mask neither is
  checked);
- its horizon (days from the last scan to the target day) is longer than the horizon its forecaster was validated
  for (``validated_days`` of the registry; docs/evaluation.md);
- a fitted growth parameter sits at a bound of its range (:func:`gliomaforecast.growth.checks.parameters_at_bounds`);
- the growth model's median curve has a peak that no scan observed
  (:func:`gliomaforecast.growth.checks.unobserved_bump`).
- the case has no brain mask (the CTVs are not clipped to the brain; ``gliomaforecast prepare`` derives one), or
  a session's registration onto the planning scan (``preparation`` of case.json) has a quality below
  :data:`gliomaforecast.preparation.sessions.WARN_QUALITY` (stated);
- the forecaster flagged it (a note starting ``warning: ``, e.g. a target outside a network's trained gap range);
- the case's inputs lie far from the scans its learned forecaster was trained on (:mod:`.input_shift`).

Volumes in mL, time in days.
"""

from __future__ import annotations

import numpy as np

from .forecast import Forecast, forecast_tumor_ml
from .forecasters import entry
from .growth.checks import parameters_at_bounds, unobserved_bump
from .io.case import Case
from .preparation.sessions import WARN_QUALITY

BRAIN_FRACTION_WARNING = 0.5
"""A forecast volume above this fraction of the brain volume is flagged as implausible."""


def brain_volume_ml(fc: Forecast) -> float | None:
    """The brain mask's volume (mL), or None when the case has no brain mask."""
    brain = fc.case.brain_mask()
    return None if brain is None else float(np.count_nonzero(brain) * fc.case.grid.voxel_volume_ml)


def preparation_warnings(case: Case) -> list[str]:
    """A missing brain mask, and each recorded registration whose quality is below the warning level."""
    warnings = []
    if case.brain_mask_path is None:
        warnings.append(
            "the case has no brain mask: the CTVs are not clipped to the brain (gliomaforecast prepare derives one)"
        )
    for record in (case.preparation or {}).get("registration", []):
        quality = record.get("quality")
        if quality is not None and quality < WARN_QUALITY:
            warnings.append(
                f"timepoint {record['timepoint']}: registration quality {quality:.2f} onto the planning scan is "
                f"below {WARN_QUALITY:g} (see the report's preparation figure)"
            )
    return warnings


def forecast_warnings(fc: Forecast) -> list[str]:
    """One line per reason to distrust ``fc`` (empty when none applies); see the module docstring."""
    warnings: list[str] = [] if fc.plan_warning is None else [fc.plan_warning]
    warnings += preparation_warnings(fc.case)
    day, last_day = fc.target_day, float(fc.case.timepoints[-1].day)
    med, _lo, hi = (float(v[0]) for v in fc.growth.predict([day]))
    brain_ml = brain_volume_ml(fc)
    if brain_ml:
        limit = BRAIN_FRACTION_WARNING * brain_ml
        for what, ml in (("forecast tumour", forecast_tumor_ml(fc)), ("growth model median", med)):
            if ml > limit:
                warnings.append(
                    f"implausible volume: the {what} at day {day:g} is {ml:.0f} mL, {ml / brain_ml:.0%} "
                    f"of the brain ({brain_ml:.0f} mL; flagged above {BRAIN_FRACTION_WARNING:.0%})"
                )
        if fc.growth.cap is not None and hi >= fc.growth.cap * (1.0 - 1e-9):
            warnings.append(
                f"the growth model's 95% band at day {day:g} reaches the brain volume and is capped at "
                f"{fc.growth.cap:.0f} mL"
            )
    validated = entry(fc.forecaster).validated_days
    horizon = day - last_day
    if validated is not None and horizon > validated:
        warnings.append(
            f"horizon {horizon:g} days is beyond the {validated:g} days {fc.forecaster} was validated "
            f"for (docs/evaluation.md)"
        )
    warnings += [note.removeprefix("warning: ") for note in fc.output.notes if note.startswith("warning: ")]
    if fc.input_shift is not None and fc.input_shift.flagged:
        warnings.append(fc.input_shift.warning(fc.forecaster))
    for item in parameters_at_bounds(fc.growth):
        warnings.append(f"growth model: {item.describe()}: the bound, not the scans, sets it")
    bump = unobserved_bump(fc.growth, day)
    if bump is not None:
        warnings.append(
            f"growth model: the median curve peaks at {bump[1]:.0f} mL on day {bump[0]:.0f}, between scans "
            f"and curve values of at most {bump[2]:.0f} mL around it: a bump no scan observed"
        )
    return warnings
