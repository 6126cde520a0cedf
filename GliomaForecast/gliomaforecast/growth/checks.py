"""Checks of a fitted growth model that a reader of a forecast should be told about.

- :func:`parameters_at_bounds`: fitted (free) parameters sitting at one of the physical bounds of
  :mod:`gliomaforecast.growth.fit` (the fit wanted to go further: the value, and often its bootstrap interval,
  says more about the bound than about the tumour);
- :func:`unobserved_bump`: a peak of the median curve between the first scan and the end of the forecast that
  no scan saw (rise then fall, well above every observed burden).

Time in days, rates in 1/day, burden in the fit's unit (mL for a GTV volume).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .fit import BOUNDS, EXP_GROWTH_BOUNDS, GrowthFit
from .model import PARAM_UNITS

AT_BOUND_TOLERANCE = 1e-3
"""A parameter is at a bound when it lies within this fraction of its bound range from it."""
BUMP_FACTOR = 1.5
"""A local peak of the median curve is a bump when it exceeds this factor times the burdens observed at the scans
around it and the curve's values there (the last scan and the target day bracket a peak after the last scan)."""


@dataclass(frozen=True)
class AtBound:
    """A fitted parameter at a bound: ``name``, ``value`` (its unit in ``unit``), ``side`` ('lower' or 'upper'),
    the ``bound`` and the 95% bootstrap interval (``lower``, ``upper``)."""

    name: str
    value: float
    side: str
    bound: float
    lower: float
    upper: float
    unit: str

    def describe(self) -> str:
        """``decay_rate = 0.2 1/day at its upper bound (95% bootstrap interval 0.2-0.2)``."""
        return (
            f"{self.name} = {self.value:.3g} {self.unit} at its {self.side} bound "
            f"(95% bootstrap interval {self.lower:.3g}-{self.upper:.3g})"
        )


def parameter_bounds(fit: GrowthFit) -> dict[str, tuple[float, float]]:
    """The bounds (in the fit's units, day 0 time origin) the fit of ``fit`` ran under, per parameter."""
    bounds = dict(BOUNDS)
    if fit.model == "exponential":
        bounds["growth_rate"] = EXP_GROWTH_BOUNDS
    # initial_burden is bounded relative to the largest observation at the first scan (fit._Problem)
    scale = float(np.max(fit.burdens)) * float(np.exp(-float(fit.params.growth_rate) * float(fit.days[0])))
    lo, hi = BOUNDS["initial_burden"]
    bounds["initial_burden"] = (lo * scale, hi * scale)
    return bounds


def parameters_at_bounds(fit: GrowthFit) -> list[AtBound]:
    """The free parameters of ``fit`` within :data:`AT_BOUND_TOLERANCE` of a bound of the range (in order of
    ``fit.free``); empty when none is."""
    summary = fit.parameter_summary()
    bounds = parameter_bounds(fit)
    units = dict(PARAM_UNITS, initial_burden="mL")
    found = []
    for name in fit.free:
        lo, hi = bounds[name]
        s = summary[name]
        value = float(s["value"])
        pad = AT_BOUND_TOLERANCE * (hi - lo)
        side = "lower" if value <= lo + pad else "upper" if value >= hi - pad else None
        if side is not None:
            found.append(
                AtBound(
                    name,
                    value,
                    side,
                    lo if side == "lower" else hi,
                    float(s["lower_2.5"]),
                    float(s["upper_97.5"]),
                    units[name],
                )
            )
    return found


def unobserved_bump(fit: GrowthFit, until_day: float, n: int = 2001) -> tuple[float, float, float] | None:
    """(day, burden, reference) of the highest local peak of the median curve between the first scan and ``until_day``
    (days) that no scan saw: it lies strictly between two consecutive scans (or the last scan and ``until_day``)
    and exceeds :data:`BUMP_FACTOR` times both the burdens observed there and the curve at both ends of that
    interval (``reference``: the largest of those). None when there is none (a curve that rises to ``until_day`` has
    no bump)."""
    days = np.asarray(fit.days, dtype=float)
    start, end = float(days[0]), max(float(until_day), float(days[-1]))
    if end <= start:
        return None
    t = np.linspace(start, end, n)
    median = fit.predict(t)[0]
    checkpoints = np.unique(np.append(days, end))
    peaks = np.flatnonzero((median[1:-1] > median[:-2]) & (median[1:-1] >= median[2:])) + 1
    best = None
    for i in peaks:
        k = int(np.searchsorted(checkpoints, t[i]))
        if k == 0 or k >= len(checkpoints) or t[i] in checkpoints:
            continue
        ends = checkpoints[k - 1], checkpoints[k]
        observed = [float(b) for d, b in zip(days, fit.burdens) if d in ends]
        reference = max(observed + [float(v) for v in fit.predict(np.array(ends))[0]])
        if median[i] > BUMP_FACTOR * reference and (best is None or median[i] > best[1]):
            best = (float(t[i]), float(median[i]), reference)
    return best


def cap_growth(fit: GrowthFit, cap_ml: float | None) -> GrowthFit:
    """``fit`` with every predicted volume (median, band, bootstrap draws) clipped to ``cap_ml`` (mL, the brain
    volume); ``fit`` itself when ``cap_ml`` is None."""
    return fit if cap_ml is None else replace(fit, cap=float(cap_ml))
