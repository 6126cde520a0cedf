"""Guidance: classifier guidance through a gradient callback, and classifier-free guidance in one call.

- Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2 / eq. 14): with ``grad = d log p(y | x_t) / d x_t``
  from a callback, ``eps' = eps - scale * sqrt(1 - alpha_bar_t) * grad``. ``scale`` = 1 samples
  ``p(x | y)`` when the callback returns the gradient of the true noisy-image classifier.
- Classifier-free guidance (Ho & Salimans 2022): ``e = e_u + w (e_c - e_u)``; w = 1 is the conditional
  model alone, w = 0 the unconditional one. The conditional and the unconditional pass run as ONE network
  call on a doubled batch ``[x; x]`` with conditions ``[cond; null_cond]`` (conditional half first). Since
  eps, x_0 and v are affine in the output with the same coefficients for both halves, the combination is
  applied to the raw network output, whatever the prediction type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .samplers import EpsHook, ModelFn
from .schedules import NoiseSchedule

#: ``step_fn(x_t, t, cond) -> output``: a conditional network (cond may be None for unconditional nets).
StepFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]
#: ``grad_fn(x_t, t) -> d log p(y | x_t) / d x_t``, same shape as x_t.
GradFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def cfg_combine(uncond: np.ndarray, cond: np.ndarray, scale: float) -> np.ndarray:
    """``uncond + scale * (cond - uncond)``."""
    return uncond + scale * (cond - uncond)


def classifier_free(step_fn: StepFn, cond: np.ndarray, null_cond: np.ndarray, scale: float) -> ModelFn:
    """A ``model_fn(x, t)`` that runs ``step_fn`` once on ``[x; x]``, ``[t; t]``, ``[cond; null_cond]`` (2B
    samples) and returns ``e_u + scale (e_c - e_u)``. ``cond`` and ``null_cond`` have the batch on axis 0."""
    cond = np.asarray(cond)
    null_cond = np.asarray(null_cond)
    if cond.shape != null_cond.shape:
        raise InputError(None, "null_cond", f"shape {null_cond.shape} differs from the condition's {cond.shape}")
    both = np.concatenate([cond, null_cond], axis=0)

    def model_fn(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        b = x.shape[0]
        if cond.shape[0] != b:
            raise InputError(None, "cond", f"batch {cond.shape[0]} differs from the sample batch {b}")
        out = np.asarray(step_fn(np.concatenate([x, x], axis=0), np.concatenate([t, t], axis=0), both))
        if out.shape[0] != 2 * b:
            raise InputError(
                None, "model output", f"batch {out.shape[0]}, expected {2 * b} (conditional + unconditional)"
            )
        return cfg_combine(out[b:].astype(np.float64), out[:b].astype(np.float64), scale)

    return model_fn


def classifier_guidance(grad_fn: GradFn, scale: float, schedule: NoiseSchedule) -> EpsHook:
    """An eps hook for :func:`~gliomaforecast.diffusion.samplers.sample`:
    ``eps - scale * sqrt(1 - alpha_bar_t) * grad_fn(x_t, t)``."""

    def hook(x: np.ndarray, t: np.ndarray, eps: np.ndarray) -> np.ndarray:
        grad = np.asarray(grad_fn(x, t), dtype=np.float64)
        if grad.shape != eps.shape:
            raise InputError(None, "classifier gradient", f"shape {grad.shape} differs from the sample's {eps.shape}")
        s = np.sqrt(1.0 - schedule.alpha_bar(np.asarray(t, dtype=np.int64)))
        return eps - scale * s.reshape(s.shape + (1,) * (eps.ndim - 1)) * grad

    return hook
