"""The growth model's population prior from a training cohort (``gliomaforecast.growth.prior``).

Each training patient's whole GTV-volume series (mL over days) is fitted with the full radiotherapy model
(``fit_growth`` without a prior, no bootstrap); a patient whose scans leave any of the prior's parameters
(growth rate, decay rate, delay, slope) held at a default (fewer than six scans, or no RT start before its last
scan) is left out. The prior is the per-patient values and their medians.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from gliomaforecast.growth.burden import burden_from_case
from gliomaforecast.io.case import load_case
from gliomaforecast.growth.fit import fit_growth
from gliomaforecast.growth.prior import HELD, GrowthPrior, prior_from_values


def patient_values(days: np.ndarray, volumes_ml: np.ndarray, rt_start_day: float | None) -> np.ndarray | None:
    """The ``HELD`` values (1/day, 1/day, days, 1/day) of one patient's full fit; None when its scans do not
    identify all of them."""
    fit = fit_growth(days, volumes_ml, rt_start_day, n_bootstrap=0, prior=None)
    if fit.model != "radiotherapy" or not set(HELD) <= set(fit.free):
        return None
    return np.array([float(getattr(fit.params, n)) for n in HELD])


def fit_population(case_paths: Iterable[str | Path]) -> tuple[GrowthPrior, list[str], list[str]]:
    """(prior, patient ids used, patient ids left out) of the cases at ``case_paths``."""
    rows, used, left = [], [], []
    for path in case_paths:
        case = load_case(path)
        days, volumes = burden_from_case(case)
        values = patient_values(days, volumes, case.rt_start_day)
        (left if values is None else used).append(case.patient_id)
        if values is not None:
            rows.append(values)
    if not rows:
        raise ValueError("no case identifies the growth rate, decay rate, delay and slope (six scans or more "
                         "with an RT start before the last one are needed)")
    return prior_from_values(np.array(rows)), used, left
