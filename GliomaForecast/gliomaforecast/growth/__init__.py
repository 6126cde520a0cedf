"""Mechanistic growth of tumor burden with radiotherapy: the public API of this area.

- ``GrowthParams``, ``burden``, ``burden_jacobian``: the ODE model in closed form (:mod:`.model`).
- ``fit_growth`` -> ``GrowthFit``: lmfit's least-squares fit (run as its scipy call) with bootstrap bands (:mod:`.fit`).
- ``burden_from_case``, ``slice_areas_from_case``, ``fit_case_slices``: burden series of a case
  manifest, per 3D GTV (mL) or per axial slice (mm^2) (:mod:`.burden`).
- The growth-curve figure is :func:`.plot.plot_growth` (imports matplotlib, so not re-exported here); the population
  prior (:mod:`.prior`), fit checks and the brain-volume cap (:mod:`.checks`) and growth.json (:mod:`.record`).

Time in days, rates in 1/day, burden in mL (volume) or mm^2 (slice area).

Layer 2: imports the case manifest and the base modules; never a forecaster or the orchestration.
"""

from .burden import burden_from_case, fit_case_slices, slice_areas_from_case
from .fit import GrowthFit, fit_growth
from .model import PARAM_NAMES, PARAM_UNITS, GrowthParams, burden, burden_jacobian, log_cosh

__all__ = [
    "GrowthParams",
    "GrowthFit",
    "PARAM_NAMES",
    "PARAM_UNITS",
    "burden",
    "burden_jacobian",
    "log_cosh",
    "fit_growth",
    "burden_from_case",
    "slice_areas_from_case",
    "fit_case_slices",
]
