"""The noise schedule of the diffusion families (multi-task, guided DDIM, latent): the core's linear schedule with
T = 1000 steps (``gliomaforecast.diffusion``, the schedule the samplers use at run time) and the forward noising
with its v-prediction target."""

from __future__ import annotations

import torch

from gliomaforecast.diffusion import make_schedule

NUM_TRAIN_TIMESTEPS = 1000
SCHEDULE = "linear"


def alphas_cumprod(schedule: str = SCHEDULE, steps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """alpha_bar_t (float32, (T,)) of the core's schedule."""
    return torch.as_tensor(make_schedule(schedule, steps).alphas_cumprod, dtype=torch.float32)


def noised(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, v target) for clean ``x0``, steps ``t`` (B,), noise ``eps`` and alpha_bar table ``ab``."""
    a = ab[t].reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, a.sqrt() * eps - (1 - a).sqrt() * x0
