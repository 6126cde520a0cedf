"""The multi-task loss L = L_diff + lambda_RT * L_RT (Multi-task diffusion paper, section 4.4).

* L_diff: mean squared error of the generative decoder's v-prediction, v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0,
  at a uniformly drawn step t of the core's linear schedule (T = 1000, ``gliomaforecast.diffusion``, the
  schedule the sampler uses at run time; ``common.schedule``);
* L_RT = mean over pixels of (1 + R^gamma) BCE(P, P_hat), R the dose normalised to [0, 1] per patient, P the
  target probability map (soft labels), P_hat the predictive decoder's probability; lambda_RT = 0.1.
  gamma > 0: a larger gamma concentrates the extra weight on the high-dose region (R = 1 gets weight 2 for
  every gamma; R = 0.5 gets 1 + 0.5^gamma).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..common.schedule import NUM_TRAIN_TIMESTEPS, SCHEDULE, alphas_cumprod, noised

LAMBDA_RT = 0.1
GAMMA = 2.0

__all__ = ["LAMBDA_RT", "GAMMA", "NUM_TRAIN_TIMESTEPS", "SCHEDULE", "alphas_cumprod", "noised", "rt_weighted_bce",
           "multitask_loss"]


def rt_weighted_bce(p_hat: torch.Tensor, p: torch.Tensor, r: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """mean((1 + R^gamma) * BCE(P, P_hat)) with soft targets ``p`` and the normalised dose ``r`` in [0, 1]."""
    bce = F.binary_cross_entropy(p_hat.clamp(1e-6, 1 - 1e-6), p, reduction="none")
    return ((1 + r.clamp(0, 1) ** gamma) * bce).mean()


def multitask_loss(v_hat: torch.Tensor, v: torch.Tensor, p_hat: torch.Tensor, p: torch.Tensor, r: torch.Tensor,
                   lambda_rt: float = LAMBDA_RT, gamma: float = GAMMA) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_diff + lambda_RT * L_RT; returns the loss and its terms as floats."""
    l_diff = F.mse_loss(v_hat, v)
    l_rt = rt_weighted_bce(p_hat, p, r, gamma)
    loss = l_diff + lambda_rt * l_rt
    return loss, {"loss": float(loss.detach()), "l_diff": float(l_diff.detach()), "l_rt": float(l_rt.detach())}
