"""Run a sampler over many slices with an ONNX step network, in batches, seeded per slice.

The step network is an :class:`~gliomaforecast.models.OnnxModel` (anything with ``.run(dict) -> dict``
and, optionally, ``.spec.inputs``/``.spec.outputs``) or a plain callable ``step_fn(x, t, cond) -> output``.
Inputs and outputs are numpy arrays with the batch on axis 0: ``x`` (B, C, H, W) or any per-sample shape,
``t`` (B,) integer timesteps in 0..T-1, ``cond`` (B, ...) or None. The result is float32, one sample per
input slice, and does not depend on ``batch_size`` (see :mod:`.noise`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .guidance import StepFn, classifier_free, classifier_guidance
from .noise import SampleNoise
from .prediction import add_noise, prediction_type
from .samplers import EpsHook, ModelFn, sample, sampler_name
from .schedules import NoiseSchedule, make_schedule, sampling_timesteps

#: ``grad_fn(x_t, t, cond) -> d log p(y | x_t) / d x_t`` for classifier guidance (cond None when absent).
CondGradFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]
#: ``progress(fraction 0..1, message)``.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample. ``start`` is the SDEdit noise level k (0..T-1; None: pure noise at T-1);
    ``cfg_scale`` w turns on classifier-free guidance (None: one conditional pass per step);
    ``classifier_scale`` weights the classifier gradient (0: off); ``clip_x0`` clips predicted x_0;
    ``spacing`` of the timestep list: None picks ``logsnr`` for ``dpmpp_2m`` and ``linspace`` otherwise."""

    sampler: str = "dpmpp_2m"
    steps: int = 20
    start: int | None = None
    eta: float = 0.0
    prediction: str = "epsilon"
    schedule: str = "linear"
    num_train_timesteps: int = 1000
    spacing: str | None = None
    cfg_scale: float | None = None
    classifier_scale: float = 0.0
    clip_x0: tuple[float, float] | None = None

    def validate(self) -> tuple[NoiseSchedule, np.ndarray]:
        """Check every field (ValueError naming it) and return the schedule and the timestep list."""
        kind = sampler_name(self.sampler)
        prediction_type(self.prediction)
        if not self.eta >= 0:
            raise InputError(None, "eta", f"must be >= 0, got {self.eta}")
        schedule = make_schedule(self.schedule, self.num_train_timesteps)
        spacing = self.spacing or ("logsnr" if kind == "dpmpp_2m" else "linspace")
        ts = sampling_timesteps(
            self.steps,
            start=self.start,
            spacing=spacing,  # type: ignore[arg-type]
            schedule=schedule,
        )
        return schedule, ts


def _names(specs: Any) -> list[str]:
    return [s.name for s in specs] if specs is not None else []


def step_function(
    model: Any,
    *,
    x_input: str | None = None,
    t_input: str | None = None,
    cond_input: str | None = None,
    output: str | None = None,
) -> StepFn:
    """``step_fn(x, t, cond)`` for a model: a callable is returned as is; an object with ``.run(dict)``
    (an OnnxModel) is fed ``{x_input: x, t_input: t, cond_input: cond}``. Names default to the registry
    spec's inputs in order (x, t, then cond when there are three) and its first output."""
    if not hasattr(model, "run"):
        if not callable(model):
            raise InputError(None, "model", f"need an object with .run(dict) or a callable, got {type(model).__name__}")
        return model
    spec = getattr(model, "spec", None)
    ins = _names(getattr(spec, "inputs", None))
    outs = _names(getattr(spec, "outputs", None))
    x_name = x_input or (ins[0] if ins else "x")
    t_name = t_input or (ins[1] if len(ins) > 1 else "timesteps")
    c_name = cond_input or (ins[2] if len(ins) > 2 else None)
    o_name = output or (outs[0] if outs else None)

    def step_fn(x: np.ndarray, t: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
        feed = {x_name: np.ascontiguousarray(x, dtype=np.float32), t_name: np.asarray(t)}
        if cond is not None:
            if c_name is None:
                raise InputError(None, "cond", "the model has no condition input")
            feed[c_name] = np.ascontiguousarray(cond, dtype=np.float32)
        result = model.run(feed)
        return result[o_name] if o_name is not None else next(iter(result.values()))

    return step_fn


def sample_slices(
    model: Any,
    n: int | None = None,
    sample_shape: tuple[int, ...] | None = None,
    *,
    x0: np.ndarray | None = None,
    cond: np.ndarray | None = None,
    null_cond: np.ndarray | float | None = None,
    settings: SamplerSettings = SamplerSettings(),
    seed: int = 0,
    batch_size: int = 8,
    grad_fn: CondGradFn | None = None,
    progress: Progress | None = None,
    indices: Sequence[int] | None = None,
    **names: str,
) -> np.ndarray:
    """Sample ``n`` slices (float32, shape ``(n, *sample_shape)``) in batches of ``batch_size``.

    Start: with ``x0`` (n, ...), each slice is noised to ``settings.start`` = k (SDEdit:
    ``x_k = sqrt(ab_k) x0 + sqrt(1 - ab_k) eps``) and denoised from k; without it, from pure noise at the
    list's first timestep. ``cond`` (n, ...) is fed to the network each step; with ``settings.cfg_scale``
    the unconditional pass uses ``null_cond`` (an array like ``cond``, or a fill value; default 0) in the
    same call. ``grad_fn`` with ``settings.classifier_scale`` adds classifier guidance. Sample ``j`` draws
    its noise from its own generator (seed, indices[j]) (``indices`` default ``0..n-1``, e.g. the slice
    numbers in the volume), so the output depends neither on ``batch_size`` nor on which other slices are
    sampled in the same request.
    ``names`` (x_input, t_input, cond_input, output) go to :func:`step_function`.
    """
    schedule, ts = settings.validate()
    n, sample_shape, x0, cond = _resolve_shapes(n, sample_shape, x0, cond)
    keys = _check_options(n, batch_size, settings, cond, grad_fn, indices)
    step_fn = step_function(model, **names)
    out = np.empty((int(n), *sample_shape), dtype=np.float32)
    n_batches = -(-int(n) // int(batch_size))
    for b in range(n_batches):
        lo, hi = b * int(batch_size), min(int(n), (b + 1) * int(batch_size))
        noise = SampleNoise(seed, keys[lo:hi])
        start_noise = noise((hi - lo, *sample_shape))
        k = int(ts[0])
        x_start = add_noise(x0[lo:hi], start_noise, k, schedule) if x0 is not None else start_noise
        c = cond[lo:hi] if cond is not None else None
        out[lo:hi] = sample(
            _batch_model(step_fn, c, null_cond, (lo, hi), settings.cfg_scale),
            x_start,
            ts,
            schedule,
            sampler=settings.sampler,
            prediction=settings.prediction,
            eta=settings.eta,
            noise_fn=noise,
            eps_hook=_guidance_hook(grad_fn, c, settings.classifier_scale, schedule),
            clip_x0=settings.clip_x0,
            callback=_batch_report(progress, b, n_batches),
        )
    return out


def _resolve_shapes(
    n: int | None, sample_shape: tuple[int, ...] | None, x0: np.ndarray | None, cond: np.ndarray | None
) -> tuple[int, tuple[int, ...], np.ndarray | None, np.ndarray | None]:
    """(n, sample_shape, x0, cond): the number of samples and their shape, from ``x0`` (n, ...) or ``cond`` (n, ...)
    when not given, and the arrays as numpy arrays; InputError when they disagree, are missing, or ``n`` is not a
    whole number >= 0."""
    if x0 is not None:
        x0 = np.asarray(x0)
        n, sample_shape = (x0.shape[0], x0.shape[1:]) if n is None else (n, sample_shape or x0.shape[1:])
        if x0.shape != (n, *sample_shape):
            raise InputError(None, "x0", f"shape {x0.shape} differs from {(n, *sample_shape)}")
    if cond is not None:
        cond = np.asarray(cond)
        n = cond.shape[0] if n is None else n
        if cond.shape[0] != n:
            raise InputError(None, "cond", f"{cond.shape[0]} conditions for {n} samples")
    if n is None or sample_shape is None:
        raise InputError(None, "sample_shape", "give n and sample_shape, or x0")
    if int(n) != n or n < 0:
        raise InputError(None, "n", f"must be an integer >= 0, got {n}")
    return n, sample_shape, x0, cond


def _check_options(
    n: int,
    batch_size: int,
    settings: SamplerSettings,
    cond: np.ndarray | None,
    grad_fn: CondGradFn | None,
    indices: Sequence[int] | None,
) -> list[int]:
    """The noise keys of the ``n`` samples (``indices``, default ``0..n-1``); InputError for a ``batch_size`` below
    1, guidance without what it needs (a condition, a gradient), or keys that are not ``n`` distinct integers."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise InputError(None, "batch_size", f"must be an integer >= 1, got {batch_size}")
    if settings.cfg_scale is not None and cond is None:
        raise InputError(None, "cfg_scale", "classifier-free guidance needs a condition (cond)")
    if settings.classifier_scale and grad_fn is None:
        raise InputError(None, "classifier_scale", "classifier guidance needs grad_fn")
    keys = list(range(int(n))) if indices is None else [int(i) for i in indices]
    if len(keys) != n or len(set(keys)) != len(keys):
        raise InputError(
            None, "indices", f"need {n} distinct sample indices, got {len(keys)} ({len(set(keys))} distinct)"
        )
    return keys


def _batch_model(
    step_fn: StepFn,
    c: np.ndarray | None,
    null_cond: np.ndarray | float | None,
    rows: tuple[int, int],
    cfg_scale: float | None,
) -> ModelFn:
    """``model_fn(x, t)`` of the batch of samples ``rows`` (lo, hi) with conditions ``c``: classifier-free guidance
    of weight ``cfg_scale`` against ``null_cond`` (an array like ``cond``, or a fill value; default 0) when given,
    else one conditional pass."""
    if cfg_scale is not None:
        assert c is not None
        lo, hi = rows
        nc = (
            np.broadcast_to(np.asarray(0.0 if null_cond is None else null_cond, dtype=c.dtype), c.shape)
            if null_cond is None or np.ndim(null_cond) == 0
            else np.asarray(null_cond)[lo:hi]
        )
        return classifier_free(step_fn, c, np.ascontiguousarray(nc), cfg_scale)
    return lambda x, t: step_fn(x, t, c)


def _guidance_hook(
    grad_fn: CondGradFn | None, c: np.ndarray | None, scale: float, schedule: NoiseSchedule
) -> EpsHook | None:
    """The classifier-guidance eps hook of a batch with conditions ``c`` (None without ``grad_fn`` or ``scale``)."""
    if grad_fn is not None and scale:
        return classifier_guidance(lambda x, t: grad_fn(x, t, c), scale, schedule)
    return None


def _batch_report(progress: Progress | None, b: int, n_batches: int) -> Callable[[int, int], None]:
    """The sampler's callback of batch ``b`` (of ``n_batches``): step ``i`` of ``total`` as the fraction of all
    batches done (nothing without ``progress``)."""

    def report(i: int, total: int) -> None:
        if progress is not None:
            progress((b + i / total) / n_batches, f"denoising batch {b + 1}/{n_batches}, step {i}/{total}")

    return report
