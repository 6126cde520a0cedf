"""Mechanistic tumor-burden model with radiotherapy (Mechanistic Learning, eq. 3-6), in closed form.

Before RT start ``t_rt`` the burden grows exponentially, ``dA/dt = lam * A``. At ``t_rt`` it splits into a
surviving part ``A_l = S * A`` that keeps growing at ``lam`` and a dying part ``A_d = (1 - S) * A`` with
``dA_d/dt = -tanh(slope * (t - t_rt - delay)) * lam_d * A_d``: it still grows for ``delay`` days, then
shrinks towards the rate ``lam_d``. Integrating the tanh gives the closed form

    A_d(t) = A_d(t_rt) * (cosh(slope * delay) / cosh(slope * (t - t_rt - delay))) ** (lam_d / slope),

evaluated here through a stable log-cosh so that large arguments neither overflow nor lose precision.

Units: time in days; rates and slope in 1/day; ``delay`` in days; burden in whatever unit the
``initial_burden`` has (mL for a 3D GTV, mm^2 for an axial slice area). ``initial_burden`` is the burden
at day 0 of the time axis (the first scan for a case manifest).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Union

import numpy as np

ArrayLike = Union[float, np.ndarray]

PARAM_NAMES = ("growth_rate", "decay_rate", "delay", "slope", "surviving_fraction", "initial_burden")
PARAM_UNITS = {
    "growth_rate": "1/day",
    "decay_rate": "1/day",
    "delay": "day",
    "slope": "1/day",
    "surviving_fraction": "1",
    "initial_burden": "burden",
}


@dataclass(frozen=True)
class GrowthParams:
    """Parameters of the growth model. Each field is a number or an array; arrays broadcast against each
    other and against ``days`` in :func:`burden` (use :meth:`stack` for many parameter sets at once).

    growth_rate: lam, 1/day.  decay_rate: lam_d, 1/day (>= 0).  delay: days after RT start at which the
    dying part starts to shrink.  slope: steepness of that transition, 1/day (> 0).
    surviving_fraction: S in [0, 1].  initial_burden: A(0), burden at day 0 (mL or mm^2, >= 0).
    """

    growth_rate: ArrayLike
    decay_rate: ArrayLike = 0.0
    delay: ArrayLike = 0.0
    slope: ArrayLike = 1.0
    surviving_fraction: ArrayLike = 1.0
    initial_burden: ArrayLike = 1.0

    @classmethod
    def stack(cls, sets: Iterable[GrowthParams]) -> GrowthParams:
        """K parameter sets as one GrowthParams whose fields have shape (K, 1): ``burden(days, stacked)``
        then returns a (K, len(days)) array."""
        sets = list(sets)
        return cls(**{f.name: np.array([float(getattr(p, f.name)) for p in sets])[:, None] for f in fields(cls)})

    def as_dict(self) -> dict[str, ArrayLike]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def log_cosh(x: ArrayLike) -> np.ndarray:
    """log(cosh(x)) without overflow: |x| + log1p(exp(-2|x|)) - log(2)."""
    a = np.abs(np.asarray(x, dtype=float))
    return a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)


def _parts(days: ArrayLike, p: GrowthParams, rt_start_day: float | None):
    """Broadcast arrays (t, pre-RT mask, surviving part E1, dying part E2, log-decay factor g, tau - delay)
    with A = A0 * [pre: exp(lam t); post: S * E1 + (1 - S) * E2]; E1, E2 exclude A0 and S."""
    t = np.asarray(days, dtype=float)
    lam = np.asarray(p.growth_rate, dtype=float)
    if rt_start_day is None:
        return t, np.ones(np.broadcast_shapes(t.shape, lam.shape), bool), np.exp(lam * t), None, None, None
    t_rt = float(rt_start_day)
    lam_d = np.asarray(p.decay_rate, dtype=float)
    delay = np.asarray(p.delay, dtype=float)
    slope = np.asarray(p.slope, dtype=float)
    pre = t < t_rt
    tau = np.maximum(t - t_rt, 0.0)
    u = tau - delay
    g = lam_d / slope * (log_cosh(slope * delay) - log_cosh(slope * u))
    e1 = np.exp(lam * t)
    e2 = np.exp(lam * np.minimum(t, t_rt) + np.where(pre, 0.0, g))
    pre = np.broadcast_to(pre, np.broadcast_shapes(pre.shape, g.shape, e1.shape))
    return t, pre, e1, e2, g, u


def burden(days: ArrayLike, params: GrowthParams, rt_start_day: float | None = None) -> np.ndarray:
    """Tumor burden at ``days`` (days) in the unit of ``params.initial_burden``.

    Closed form of the ODE system (module docstring), exact to rounding. ``rt_start_day`` None means no
    RT: exponential growth only. Parameter fields broadcast against ``days``: fields of shape (K, 1) and
    days of shape (N,) give a (K, N) array.
    """
    return burden_of_parts(_parts(days, params, rt_start_day), params)


def model_parts(days: ArrayLike, params: GrowthParams, rt_start_day: float | None = None) -> tuple:
    """The terms :func:`burden_of_parts` and :func:`jacobian_of_parts` share, at 1-D ``days`` (days) and scalar
    ``params``: a fit evaluates the burden and then its Jacobian at the same parameters from one set of terms."""
    return _parts(np.atleast_1d(np.asarray(days, dtype=float)), params, rt_start_day)


def burden_of_parts(parts: tuple, params: GrowthParams) -> np.ndarray:
    """:func:`burden` from the terms of :func:`model_parts` (or ``_parts``) of the same ``params``."""
    a0 = np.asarray(params.initial_burden, dtype=float)
    _, pre, e1, e2, _, _ = parts
    if e2 is None:
        return a0 * e1
    s = np.asarray(params.surviving_fraction, dtype=float)
    return a0 * np.where(pre, e1, s * e1 + (1.0 - s) * e2)


def burden_jacobian(
    days: ArrayLike, params: GrowthParams, rt_start_day: float | None = None, names: Iterable[str] = PARAM_NAMES
) -> np.ndarray:
    """Partial derivatives of :func:`burden` at ``days`` with respect to the parameters ``names``
    (scalar parameters), shape (len(days), len(names)). Used as the analytic Jacobian of the fit."""
    return jacobian_of_parts(model_parts(days, params, rt_start_day), params, rt_start_day, names)


def jacobian_of_parts(
    parts: tuple, params: GrowthParams, rt_start_day: float | None = None, names: Iterable[str] = PARAM_NAMES
) -> np.ndarray:
    """:func:`burden_jacobian` from the terms of :func:`model_parts` of the same ``params`` and RT start."""
    a0 = float(params.initial_burden)
    t, pre, e1, e2, g, u = parts
    cols: dict[str, np.ndarray] = {}
    if rt_start_day is None:  # the no-RT parts of _parts: e2 is None
        cols["initial_burden"] = e1
        cols["growth_rate"] = a0 * t * e1
        zero = np.zeros_like(t)
        cols.update({k: zero for k in ("decay_rate", "delay", "slope", "surviving_fraction")})
    else:
        t_rt = float(rt_start_day)
        s, lam_d = float(params.surviving_fraction), float(params.decay_rate)
        delay, slope = float(params.delay), float(params.slope)
        post = ~pre
        a_l = np.where(pre, 0.0, a0 * s * e1)
        a_d = np.where(pre, 0.0, a0 * (1.0 - s) * e2)
        a_pre = np.where(pre, a0 * e1, 0.0)
        cols["initial_burden"] = np.where(pre, e1, s * e1 + (1.0 - s) * e2)
        cols["growth_rate"] = t * a_pre + t * a_l + t_rt * a_d
        cols["surviving_fraction"] = np.where(post, a0 * (e1 - e2), 0.0)
        lc_diff = log_cosh(slope * delay) - log_cosh(slope * u)
        cols["decay_rate"] = a_d * lc_diff / slope
        th_d, th_u = np.tanh(slope * delay), np.tanh(slope * u)
        cols["delay"] = a_d * lam_d * (th_d + th_u)
        cols["slope"] = a_d * lam_d / slope * (delay * th_d - u * th_u - lc_diff / slope)
    return np.stack([cols[n] for n in names], axis=-1)
