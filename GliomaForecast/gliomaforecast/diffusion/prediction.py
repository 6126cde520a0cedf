"""What a denoising network predicts, and conversions between its output, x_0 and eps.

With ``a = sqrt(alpha_bar_t)`` and ``s = sqrt(1 - alpha_bar_t)`` and ``x_t = a x_0 + s eps``:

- ``epsilon``: the network predicts the noise ``eps``; ``x_0 = (x_t - s eps) / a``.
- ``sample``: the network predicts ``x_0``; ``eps = (x_t - a x_0) / s``.
- ``v_prediction``: the network predicts ``v = a eps - s x_0`` (Salimans & Ho 2022, MONAI's
  ``get_velocity``); ``x_0 = a x_t - s v``, ``eps = s x_t + a v``.

MONAI's names are the canonical ones; ``eps``, ``x0`` and ``v`` are accepted as aliases.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .schedules import NoiseSchedule

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
_ALIASES = {"eps": "epsilon", "x0": "sample", "x_0": "sample", "v": "v_prediction"}


def prediction_type(name: str) -> str:
    """The canonical prediction type of ``name``; an unknown one is a ValueError naming the field."""
    key = _ALIASES.get(name, name)
    if key not in PREDICTION_TYPES:
        raise InputError(
            None,
            "prediction",
            f"unknown prediction type '{name}' (known: {', '.join(PREDICTION_TYPES)}; aliases eps, x0, v)",
        )
    return key


def _coefficients(alpha_bar: float | np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    ab = np.asarray(alpha_bar, dtype=np.float64)
    ab = ab.reshape(ab.shape + (1,) * (ndim - ab.ndim))
    return np.sqrt(ab), np.sqrt(1.0 - ab)


def to_x0_eps(
    output: np.ndarray, x_t: np.ndarray, alpha_bar: float | np.ndarray, prediction: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(x_0, eps)`` from a network output at noise level ``alpha_bar`` (scalar or one per sample, axis 0).

    Where ``alpha_bar`` is 1 (no noise) eps is undefined and returned as 0 for ``sample`` prediction."""
    kind = prediction_type(prediction)
    out = np.asarray(output, dtype=np.float64)
    x = np.asarray(x_t, dtype=np.float64)
    a, s = _coefficients(alpha_bar, x.ndim)
    if kind == "epsilon":
        return (x - s * out) / a, out
    if kind == "v_prediction":
        return a * x - s * out, s * x + a * out
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(s > 0, (x - a * out) / np.where(s > 0, s, 1.0), 0.0)
    return out, eps


def x0_from_eps(eps: np.ndarray, x_t: np.ndarray, alpha_bar: float | np.ndarray) -> np.ndarray:
    """``x_0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)``."""
    x = np.asarray(x_t, dtype=np.float64)
    a, s = _coefficients(alpha_bar, x.ndim)
    return (x - s * np.asarray(eps, dtype=np.float64)) / a


def add_noise(x0: np.ndarray, noise: np.ndarray, t: int | np.ndarray, schedule: NoiseSchedule) -> np.ndarray:
    """Forward process: ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise`` (float64).

    This is the SDEdit start: a given image noised to level ``k`` (``t = k``), then denoised from ``k``.
    ``t`` is one timestep for all samples or one per sample (axis 0)."""
    x = np.asarray(x0, dtype=np.float64)
    if np.shape(noise) != x.shape:
        raise InputError(None, "noise", f"shape {np.shape(noise)} differs from the image's {x.shape}")
    a, s = _coefficients(schedule.alpha_bar(t), x.ndim)
    return a * x + s * np.asarray(noise, dtype=np.float64)
