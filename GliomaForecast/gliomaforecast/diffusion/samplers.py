"""Reverse-diffusion steps and the sampling loop: DDPM (ancestral), DDIM (eta >= 0) and DPM-Solver++(2M).

Every step goes from timestep ``t`` to ``t_prev``, the NEXT ENTRY OF THE SAMPLER'S OWN TIMESTEP LIST
(:func:`~gliomaforecast.diffusion.schedules.sampling_timesteps`), or -1 (clean, alpha_bar = 1) after the
last entry. MONAI 1.6's DDIMScheduler builds its list with ``linspace(T-1, 0, N)`` but steps to
``t - T // N``: at N = 10 it steps 999 -> 899 although the next listed timestep is 888, and only its
last step reaches alpha_bar = 1. The steps here take ``t_prev`` as an argument and the loop passes the
list's next entry, so the two cannot disagree.

Notation: ``ab_t = alpha_bar_t``, ``a_t = sqrt(ab_t)``, ``s_t = sqrt(1 - ab_t)``.

- DDPM (Ho et al. 2020, eq. 6-7), generalised to any ``t_prev < t`` (the posterior q(x_s | x_t, x_0) with
  ``alpha_{t|s} = ab_t / ab_s``, ``beta_{t|s} = 1 - alpha_{t|s}``): mean
  ``a_s beta_{t|s} / (1 - ab_t) x_0 + sqrt(alpha_{t|s}) (1 - ab_s) / (1 - ab_t) x_t``, variance
  ``(1 - ab_s) / (1 - ab_t) beta_{t|s}`` (MONAI's ``fixed_small``), no noise on the step to -1. With
  ``t_prev = t - 1`` this is exactly MONAI's DDPMScheduler.step.
- DDIM (Song et al. 2021, eq. 12, 16): ``x_s = a_s x_0 + sqrt(1 - ab_s - sigma^2) eps + sigma z``,
  ``sigma = eta sqrt((1 - ab_s) / (1 - ab_t) (1 - ab_t / ab_s))``.
- DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2, data prediction, multistep second order) in
  ``lambda = log(a / s)``: ``x_s = (s_s / s_t) x_t - a_s (exp(-h) - 1) D``, ``h = lambda_s - lambda_t``,
  ``D = x0_t`` on the first step and the step to -1, else ``D = (1 + 1/(2r)) x0_t - 1/(2r) x0_{t'}``
  with ``r = h' / h`` from the previous step ``t' -> t``. Deterministic; 10-20 network calls suffice.

All arithmetic is float64; the loop returns float64 (the runner casts to float32).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .prediction import prediction_type, to_x0_eps, x0_from_eps
from .schedules import NoiseSchedule

#: sampler names; ``dpm-solver++`` and ``dpmsolver++`` are aliases of ``dpmpp_2m``.
SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")
_ALIASES = {"dpm-solver++": "dpmpp_2m", "dpmsolver++": "dpmpp_2m", "dpm_solver_pp_2m": "dpmpp_2m"}

#: ``model_fn(x_t, t) -> output``: x_t (B, ...) float64, t (B,) int64 timesteps; output like x_t.
ModelFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: ``eps_hook(x_t, t, eps) -> eps``: changes the predicted noise (classifier guidance).
EpsHook = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: ``noise_fn(shape) -> array`` of standard normal noise of ``shape`` (the whole batch's shape).
NoiseFn = Callable[[tuple[int, ...]], np.ndarray]


def sampler_name(name: str) -> str:
    """The canonical sampler name; an unknown one is a ValueError naming the field."""
    key = _ALIASES.get(name, name)
    if key not in SAMPLERS:
        raise InputError(None, "sampler", f"unknown sampler '{name}' (known: {', '.join(SAMPLERS)})")
    return key


def _check_pair(t: int, t_prev: int, schedule: NoiseSchedule) -> tuple[float, float]:
    T = schedule.num_train_timesteps
    if not (0 <= int(t) < T and -1 <= int(t_prev) < int(t)):
        raise InputError(
            None, "timestep", f"a step needs 0 <= t < {T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}"
        )
    return float(schedule.alpha_bar(int(t))), float(schedule.alpha_bar(int(t_prev)))


def _clip(x0: np.ndarray, clip_x0: tuple[float, float] | None) -> np.ndarray:
    return x0 if clip_x0 is None else np.clip(x0, clip_x0[0], clip_x0[1])


def _need_noise(noise: np.ndarray | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    if noise is None:
        raise InputError(None, "noise", f"{what} adds noise: pass noise of shape {shape}")
    if np.shape(noise) != shape:
        raise InputError(None, "noise", f"shape {np.shape(noise)} differs from the sample's {shape}")
    return np.asarray(noise, dtype=np.float64)


def beta_between(schedule: NoiseSchedule, t: int, t_prev: int) -> float:
    """``beta_{t|s} = 1 - alpha_bar_t / alpha_bar_s`` computed without cancellation as
    ``-expm1(sum log alphas[s+1..t])`` (``betas[t]`` itself when ``s = t - 1``; ``1 - alpha_bar_t`` for s = -1)."""
    if t_prev == t - 1 and t_prev >= 0:
        return float(schedule.betas[t])
    if t_prev < 0:
        return float(-np.expm1(np.sum(np.log(schedule.alphas[: t + 1]))))
    return float(-np.expm1(np.sum(np.log(schedule.alphas[t_prev + 1 : t + 1]))))


def ddpm_update(
    x0: np.ndarray, x_t: np.ndarray, ab_t: float, ab_s: float, noise: np.ndarray | None, beta_ts: float | None = None
) -> np.ndarray:
    """One ancestral step from predicted ``x0``: posterior mean plus ``sqrt(variance) * noise`` (none when
    ``ab_s == 1``, the step to the clean image). ``beta_ts`` (:func:`beta_between`) defaults to
    ``1 - ab_t / ab_s``."""
    beta_ts = 1.0 - ab_t / ab_s if beta_ts is None else beta_ts
    alpha_ts = 1.0 - beta_ts
    mean = (np.sqrt(ab_s) * beta_ts / (1.0 - ab_t)) * x0 + (np.sqrt(alpha_ts) * (1.0 - ab_s) / (1.0 - ab_t)) * x_t
    if ab_s >= 1.0:
        return mean
    variance = max((1.0 - ab_s) / (1.0 - ab_t) * beta_ts, 1e-20)
    return mean + np.sqrt(variance) * _need_noise(noise, x_t.shape, "a DDPM step before the last")


def ddim_update(
    x0: np.ndarray, eps: np.ndarray, ab_t: float, ab_s: float, eta: float, noise: np.ndarray | None
) -> np.ndarray:
    """One DDIM step from predicted ``x0`` and ``eps`` (eq. 12 of Song et al.); noise only when eta > 0."""
    sigma = eta * np.sqrt((1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s))
    out = np.sqrt(ab_s) * x0 + np.sqrt(max(1.0 - ab_s - sigma**2, 0.0)) * eps
    if eta > 0 and sigma > 0:
        out = out + sigma * _need_noise(noise, eps.shape, "a DDIM step with eta > 0")
    return out


def ddpm_step(
    model_output: np.ndarray,
    x_t: np.ndarray,
    t: int,
    t_prev: int,
    schedule: NoiseSchedule,
    *,
    prediction: str = "epsilon",
    noise: np.ndarray | None = None,
    clip_x0: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """DDPM ancestral step ``t -> t_prev``: returns ``(x_{t_prev}, predicted x_0)`` (float64).

    ``noise`` (standard normal, shape of ``x_t``) is required unless ``t_prev == -1``."""
    ab_t, ab_s = _check_pair(t, t_prev, schedule)
    x = np.asarray(x_t, dtype=np.float64)
    x0, _ = to_x0_eps(model_output, x, ab_t, prediction)
    x0 = _clip(x0, clip_x0)
    return ddpm_update(x0, x, ab_t, ab_s, noise, beta_between(schedule, int(t), int(t_prev))), x0


def ddim_step(
    model_output: np.ndarray,
    x_t: np.ndarray,
    t: int,
    t_prev: int,
    schedule: NoiseSchedule,
    *,
    prediction: str = "epsilon",
    eta: float = 0.0,
    noise: np.ndarray | None = None,
    clip_x0: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """DDIM step ``t -> t_prev`` with stochasticity ``eta`` (0: deterministic, 1: DDPM-like); returns
    ``(x_{t_prev}, predicted x_0)``. Clipping ``x_0`` leaves eps as predicted (as MONAI does)."""
    if eta < 0:
        raise InputError(None, "eta", f"must be >= 0, got {eta}")
    ab_t, ab_s = _check_pair(t, t_prev, schedule)
    x = np.asarray(x_t, dtype=np.float64)
    x0, eps = to_x0_eps(model_output, x, ab_t, prediction)
    x0 = _clip(x0, clip_x0)
    return ddim_update(x0, eps, ab_t, ab_s, eta, noise), x0


class DPMSolverPP2M:
    """DPM-Solver++(2M): a deterministic multistep solver that keeps the previous step's ``x0`` and
    ``lambda``. Call :meth:`step` along one timestep list in order (a new list needs a new instance or
    :meth:`reset`)."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.reset()

    def reset(self) -> None:
        """Forget the previous step (the next step is first order)."""
        self._prev_x0: np.ndarray | None = None
        self._prev_lambda: float | None = None

    @staticmethod
    def _lambda(ab: float) -> float:
        return 0.5 * (np.log(ab) - np.log1p(-ab)) if ab < 1.0 else np.inf

    def update(self, x0: np.ndarray, x_t: np.ndarray, ab_t: float, ab_s: float) -> np.ndarray:
        """One step from predicted ``x0`` at ``ab_t`` to ``ab_s``."""
        lam_t = self._lambda(ab_t)
        if ab_s >= 1.0:  # the step to the clean image: first order, x_s = x0
            out = x0
        else:
            lam_s = self._lambda(ab_s)
            h = lam_s - lam_t
            d = x0
            if self._prev_x0 is not None and self._prev_lambda is not None:
                r = (lam_t - self._prev_lambda) / h
                d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * self._prev_x0
            out = np.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * x_t - np.sqrt(ab_s) * np.expm1(-h) * d
        self._prev_x0, self._prev_lambda = x0, lam_t
        return out

    def step(
        self,
        model_output: np.ndarray,
        x_t: np.ndarray,
        t: int,
        t_prev: int,
        *,
        prediction: str = "epsilon",
        clip_x0: tuple[float, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step ``t -> t_prev``; returns ``(x_{t_prev}, predicted x_0)``."""
        ab_t, ab_s = _check_pair(t, t_prev, self.schedule)
        x = np.asarray(x_t, dtype=np.float64)
        x0, _ = to_x0_eps(model_output, x, ab_t, prediction)
        x0 = _clip(x0, clip_x0)
        return self.update(x0, x, ab_t, ab_s), x0


def check_timesteps(timesteps: np.ndarray, schedule: NoiseSchedule) -> np.ndarray:
    """``timesteps`` as int64 after checking they are strictly decreasing integers in 0..T-1."""
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size < 1:
        raise InputError(None, "timesteps", "need a non-empty 1-D list of timesteps (N >= 1)")
    if not np.issubdtype(ts.dtype, np.integer):
        raise InputError(None, "timesteps", f"must be integers, got {ts.dtype}")
    T = schedule.num_train_timesteps
    if ts.min() < 0 or ts.max() >= T:
        raise InputError(None, "timesteps", f"must lie in 0..{T - 1} (T = {T}), got {ts.min()}..{ts.max()}")
    if np.any(np.diff(ts) >= 0):
        raise InputError(None, "timesteps", "must be strictly decreasing")
    return ts.astype(np.int64)


def sample(
    model_fn: ModelFn,
    x_start: np.ndarray,
    timesteps: np.ndarray,
    schedule: NoiseSchedule,
    *,
    sampler: str = "ddim",
    prediction: str = "epsilon",
    eta: float = 0.0,
    noise_fn: NoiseFn | None = None,
    eps_hook: EpsHook | None = None,
    clip_x0: tuple[float, float] | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Denoise ``x_start`` (the batch at noise level ``timesteps[0]``) along ``timesteps`` to the clean image.

    One ``model_fn`` call per listed timestep; step ``i`` goes to ``timesteps[i + 1]`` and the last to -1.
    ``eps_hook`` (classifier guidance) replaces eps, and x_0 is recomputed from it. ``noise_fn`` draws the
    noise of stochastic steps (DDPM, DDIM with eta > 0). ``callback(i, n)`` after each step. Returns float64.
    """
    kind = sampler_name(sampler)
    prediction = prediction_type(prediction)
    if eta < 0:
        raise InputError(None, "eta", f"must be >= 0, got {eta}")
    ts = check_timesteps(timesteps, schedule)
    x = np.array(x_start, dtype=np.float64)
    solver = DPMSolverPP2M(schedule) if kind == "dpmpp_2m" else None
    n = len(ts)
    for i, t in enumerate(ts):
        s = int(ts[i + 1]) if i + 1 < n else -1
        ab_t, ab_s = float(schedule.alpha_bar(int(t))), float(schedule.alpha_bar(s))
        t_batch = np.full(x.shape[0], t, dtype=np.int64)
        out = np.asarray(model_fn(x, t_batch), dtype=np.float64)
        if out.shape != x.shape:
            raise InputError(None, "model output", f"shape {out.shape} differs from the sample's {x.shape}")
        x0, eps = to_x0_eps(out, x, ab_t, prediction)
        if eps_hook is not None:
            eps = np.asarray(eps_hook(x, t_batch, eps), dtype=np.float64)
            x0 = x0_from_eps(eps, x, ab_t)
        x0 = _clip(x0, clip_x0)
        stochastic = (kind == "ddpm" or (kind == "ddim" and eta > 0)) and s >= 0
        noise = noise_fn(x.shape) if stochastic and noise_fn is not None else None
        if kind == "ddpm":
            x = ddpm_update(x0, x, ab_t, ab_s, noise, beta_between(schedule, int(t), s))
        elif kind == "ddim":
            x = ddim_update(x0, eps, ab_t, ab_s, eta, noise)
        else:
            assert solver is not None
            x = solver.update(x0, x, ab_t, ab_s)
        if callback is not None:
            callback(i + 1, n)
    return x
