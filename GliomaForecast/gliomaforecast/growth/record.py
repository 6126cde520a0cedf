"""The JSON record of a growth fit (schema ``gliomaforecast.growth/1``): model, parameters with units and
bootstrap percentiles, R^2, and predictions (median and 95% band, in the burden's unit) at chosen days, clipped to
``cap`` (the brain volume in a forecast; null: none)."""

from __future__ import annotations

import math

import numpy as np

from . import PARAM_UNITS, GrowthFit

SCHEMA = "gliomaforecast.growth/1"


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def growth_record(fit: GrowthFit, days: np.ndarray, unit: str = "mL") -> dict:
    """The JSON-ready description of ``fit`` with predictions at ``days``."""
    med, lo, hi = fit.predict(days)
    units = dict(PARAM_UNITS, initial_burden=unit)
    params = {
        name: {**{k: (v if isinstance(v, bool) else _num(v)) for k, v in summary.items()}, "unit": units[name]}
        for name, summary in fit.parameter_summary().items()
    }
    return {
        "schema": SCHEMA,
        "model": fit.model,
        "note": fit.note,
        "unit": unit,
        "rt_start_day": fit.rt_start_day,
        "model_rt_start_day": fit.model_rt_start_day,
        "observed": {"days": fit.days.tolist(), "burdens": fit.burdens.tolist()},
        "parameters": params,
        "free_parameters": list(fit.free),
        "r_squared": _num(fit.r_squared),
        "bootstrap": {"n": fit.n_bootstrap, "noise": fit.noise, "seed": fit.seed, "band": [2.5, 97.5]},
        "cap": fit.cap,
        "predictions": [
            {"day": float(d), "median": _num(m), "lower_2.5": _num(low), "upper_97.5": _num(high)}
            for d, m, low, high in zip(days, med, lo, hi)
        ],
    }
