"""The torch-free diffusion sampling runtime: numpy schedules, DDPM / DDIM / DPM-Solver++(2M) samplers,
classifier and classifier-free guidance, and a batched, seeded runner over ONNX step networks.

Conventions (see docs/diffusion.md): T = 1000 training timesteps ``0..T-1`` as in MONAI 1.6, -1 is the
clean image (alpha_bar = 1), a sampler steps along its own timestep list, arrays have the batch on axis 0,
the loop computes in float64 and the runner returns float32. Nothing here imports torch or MONAI.
"""

from __future__ import annotations

from .guidance import cfg_combine, classifier_free, classifier_guidance
from .noise import SampleNoise, sample_generator
from .prediction import PREDICTION_TYPES, add_noise, prediction_type, to_x0_eps, x0_from_eps
from .runner import SamplerSettings, sample_slices, step_function
from .samplers import SAMPLERS, DPMSolverPP2M, ddim_step, ddpm_step, sample, sampler_name
from .schedules import SCHEDULES, NoiseSchedule, log_snr, make_schedule, sampling_timesteps

__all__ = [
    "PREDICTION_TYPES",
    "SAMPLERS",
    "SCHEDULES",
    "DPMSolverPP2M",
    "NoiseSchedule",
    "SampleNoise",
    "SamplerSettings",
    "add_noise",
    "cfg_combine",
    "log_snr",
    "classifier_free",
    "classifier_guidance",
    "ddim_step",
    "ddpm_step",
    "make_schedule",
    "prediction_type",
    "sample",
    "sample_generator",
    "sample_slices",
    "sampler_name",
    "sampling_timesteps",
    "step_function",
    "to_x0_eps",
    "x0_from_eps",
]
