"""Mechanistic growth of tumor burden with radiotherapy: the public API of this area.

- ``GrowthParams``, ``burden``, ``burden_jacobian``: the ODE model in closed form (``growth_model``).
- ``fit_growth`` -> ``GrowthFit``: lmfit fitting with bootstrap bands (``growth_fit``).
- ``burden_from_case``, ``slice_areas_from_case``, ``fit_case_slices``: burden series of a case
  manifest, per 3D GTV (mL) or per axial slice (mm^2) (``burden``).
- The growth-curve figure is ``growth_plot.plot_growth`` (imports matplotlib, so not re-exported here).

Time in days, rates in 1/day, burden in mL (volume) or mm^2 (slice area).
"""

from .burden import burden_from_case, fit_case_slices, slice_areas_from_case
from .growth_fit import GrowthFit, fit_growth
from .growth_model import PARAM_NAMES, PARAM_UNITS, GrowthParams, burden, burden_jacobian, log_cosh

__all__ = ["GrowthParams", "GrowthFit", "PARAM_NAMES", "PARAM_UNITS", "burden", "burden_jacobian", "log_cosh",
           "fit_growth", "burden_from_case", "slice_areas_from_case", "fit_case_slices"]
