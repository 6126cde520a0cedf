"""Losses of the guided DDIM's networks, on the core's linear schedule (T = 1000, ``gliomaforecast.diffusion``,
the schedule the sampler uses at run time).

* DDPM: mean squared error of the predicted noise eps at a uniformly drawn step t (Ho et al. 2020).
* Regressor: mean squared error of R(x_t, t) against the clean slice's burden, x_t noised at a uniform step
  t < ``max_step`` (the forecaster guides from NL <= 400; larger steps carry almost no burden information).
  The burden is scaled by ``BURDEN_GAIN`` inside the loss so that its typical values (0-0.3) are of order one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..common import schedule
from ..common.schedule import NUM_TRAIN_TIMESTEPS, SCHEDULE, alphas_cumprod  # noqa: F401 (alpha_bar_t of the core)

BURDEN_GAIN = 10.0


def noised(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps for steps ``t`` (B,) (``common.schedule``'s forward noising)."""
    return schedule.noised(x0, t, eps, ab)[0]


def ddpm_loss(eps_hat: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """MSE of the predicted noise."""
    return F.mse_loss(eps_hat, eps)


def burden_loss(r_hat: torch.Tensor, burden: torch.Tensor) -> torch.Tensor:
    """MSE of the predicted burden, both scaled by ``BURDEN_GAIN``."""
    return F.mse_loss(BURDEN_GAIN * r_hat, BURDEN_GAIN * burden)
