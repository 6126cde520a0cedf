"""Beta schedules and alpha-bar tables of a discrete diffusion process, and the samplers' timestep lists.

Conventions (those of MONAI 1.6 ``monai.networks.schedulers``, so a network trained with MONAI's
schedulers runs here unchanged):

- ``T`` training timesteps indexed ``t = 0 .. T-1``; ``betas[t]`` is the variance added at step ``t``,
  ``alphas = 1 - betas`` and ``alphas_cumprod[t] = prod_{i <= t} alphas[i]`` (``alpha_bar_t``), so a
  noised image is ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.
- ``t = -1`` stands for the clean image (``alpha_bar = 1``; MONAI's ``set_alpha_to_one=True``): a sampler's
  last step goes from its last listed timestep to ``-1``.
- Schedules are computed in float64 (MONAI computes them in float32; the two agree to about 1e-7).

Schedules: ``linear`` (MONAI ``linear_beta``: betas evenly spaced from ``beta_start`` to ``beta_end``),
``scaled_linear`` (``scaled_linear_beta``: square roots evenly spaced, then squared) and ``cosine``
(Nichol & Dhariwal 2021, MONAI 1.6's ``cosine``: ``f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)``,
``betas[t] = clip(1 - f(t+1)/f(t), 0, 0.999)``, alpha-bar the cumulative product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError

DEFAULT_TIMESTEPS = 1000
#: schedule names; MONAI's names (``linear_beta``, ``scaled_linear_beta``) are accepted as aliases.
SCHEDULES = ("linear", "scaled_linear", "cosine")
_ALIASES = {"linear_beta": "linear", "scaled_linear_beta": "scaled_linear", "cosine_beta": "cosine"}
Spacing = Literal["linspace", "leading", "logsnr"]


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete noise schedule: ``betas``, ``alphas`` and ``alphas_cumprod`` (float64, length ``T``)."""

    name: str
    betas: np.ndarray
    alphas: np.ndarray
    alphas_cumprod: np.ndarray

    @property
    def num_train_timesteps(self) -> int:
        """``T``, the number of training timesteps."""
        return int(self.betas.shape[0])

    def alpha_bar(self, t: int | np.ndarray) -> np.ndarray:
        """``alpha_bar_t`` (float64) for integer timestep(s) ``t`` in ``-1 .. T-1``; ``t = -1`` gives 1 (clean)."""
        t = np.asarray(t)
        if not np.issubdtype(t.dtype, np.integer):
            raise InputError(None, "timestep", f"must be integer, got {t.dtype}")
        if t.size and (t.min() < -1 or t.max() >= self.num_train_timesteps):
            raise InputError(
                None, "timestep", f"must be in -1..{self.num_train_timesteps - 1}, got {t.min()}..{t.max()}"
            )
        table = np.concatenate([[1.0], self.alphas_cumprod])
        return table[t + 1]


def _linear(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def _scaled_linear(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    return np.linspace(beta_start**0.5, beta_end**0.5, T, dtype=np.float64) ** 2


def _cosine(T: int, s: float) -> np.ndarray:
    x = np.linspace(0.0, T, T + 1, dtype=np.float64)
    f = np.cos(((x / T) + s) / (1 + s) * np.pi * 0.5) ** 2
    f = f / f[0]
    return np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)


def make_schedule(
    name: str = "linear",
    num_train_timesteps: int = DEFAULT_TIMESTEPS,
    *,
    beta_start: float = 1e-4,
    beta_end: float = 2e-2,
    s: float = 8e-3,
) -> NoiseSchedule:
    """The named schedule for ``num_train_timesteps`` steps (MONAI's defaults: betas 1e-4 .. 2e-2, s = 0.008).

    ``beta_start``/``beta_end`` apply to the linear schedules, ``s`` (the cosine offset) to ``cosine``.
    An unknown name or fewer than 1 timestep is a ValueError naming the field."""
    key = _ALIASES.get(name, name)
    if key not in SCHEDULES:
        raise InputError(None, "schedule", f"unknown schedule '{name}' (known: {', '.join(SCHEDULES)})")
    if int(num_train_timesteps) != num_train_timesteps or num_train_timesteps < 1:
        raise InputError(None, "num_train_timesteps", f"must be an integer >= 1, got {num_train_timesteps}")
    T = int(num_train_timesteps)
    if key == "linear":
        betas = _linear(T, beta_start, beta_end)
    elif key == "scaled_linear":
        betas = _scaled_linear(T, beta_start, beta_end)
    else:
        betas = _cosine(T, s)
    alphas = 1.0 - betas
    return NoiseSchedule(key, betas, alphas, np.cumprod(alphas))


def log_snr(schedule: NoiseSchedule) -> np.ndarray:
    """``lambda_t = log(sqrt(alpha_bar_t) / sqrt(1 - alpha_bar_t))`` for t = 0..T-1 (decreasing in t)."""
    ab = schedule.alphas_cumprod
    return 0.5 * (np.log(ab) - np.log1p(-ab))


def sampling_timesteps(
    num_steps: int,
    num_train_timesteps: int = DEFAULT_TIMESTEPS,
    *,
    start: int | None = None,
    spacing: Spacing = "linspace",
    schedule: NoiseSchedule | None = None,
) -> np.ndarray:
    """The sampler's own descending timestep list (int64, ``num_steps`` distinct entries).

    ``start`` is the first (noisiest) timestep, ``T - 1`` by default, or the SDEdit noise level ``k`` when
    denoising a partially noised image. Spacings:

    - ``linspace``: ``round(linspace(start, 0, num_steps))`` (MONAI 1.6's list); ends at 0.
    - ``leading``: ``arange(num_steps) * (T // num_steps)`` reversed (diffusers' "leading", MONAI < 1.5);
      needs ``start`` None; ends at 0.
    - ``logsnr``: uniform in ``lambda = log(a / s)`` from ``lambda_start`` to ``lambda_0`` (Lu et al. 2022's
      recommendation for DPM-Solver with few steps), rounded to distinct timesteps; ends at 0; needs
      ``schedule``.

    Each sampler steps from entry ``i`` to entry ``i + 1`` of this list and from the last entry to -1
    (clean); it never assumes a constant stride ``T // N``.
    """
    T = int(schedule.num_train_timesteps if schedule is not None else num_train_timesteps)
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise InputError(None, "steps", f"number of sampling steps must be an integer >= 1, got {num_steps}")
    n = int(num_steps)
    first = T - 1 if start is None else start
    if int(first) != first or not 0 <= first <= T - 1:
        raise InputError(None, "start", f"start noise level k must be an integer in 0..{T - 1} (T = {T}), got {first}")
    first = int(first)
    if n > first + 1:
        raise InputError(None, "steps", f"{n} steps do not fit between timestep {first} and 0 (at most {first + 1})")
    if spacing == "linspace":
        steps = np.round(np.linspace(first, 0, n)).astype(np.int64)
    elif spacing == "leading":
        if start is not None:
            raise InputError(None, "spacing", "'leading' spacing starts at its own timestep; give start=None")
        steps = (np.arange(n) * (T // n))[::-1].astype(np.int64)
    elif spacing == "logsnr":
        if schedule is None:
            raise InputError(None, "spacing", "'logsnr' spacing needs the noise schedule")
        lam = log_snr(schedule)
        targets = np.linspace(lam[first], lam[0], n)
        # lambda decreases with t: interpolate t(lambda) on the increasing reversed table
        raw = np.round(np.interp(targets, lam[::-1], np.arange(T)[::-1].astype(np.float64))).astype(np.int64)
        steps = np.empty(n, dtype=np.int64)
        steps[0] = first
        for i in range(1, n):  # keep entries distinct and leave room for the ones still to come
            steps[i] = max(min(int(raw[i]), int(steps[i - 1]) - 1), n - 1 - i)
    else:
        raise InputError(None, "spacing", f"unknown spacing '{spacing}' (known: linspace, leading, logsnr)")
    return np.ascontiguousarray(steps)
