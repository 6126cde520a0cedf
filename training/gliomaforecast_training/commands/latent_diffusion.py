"""The single-scan latent diffusion forecaster's networks: scan pairs of a cohort (``prepare``), the image and
GTV VQ-VAEs (``vqvae``), the latent denoiser (``diffusion``), ONNX export with parity and the registry family
(``export``), validation / benchmark figures and the guidance-weight choice (``evaluate``)."""

from __future__ import annotations

from ..common.command import Action, family_command

NAME = "latent-diffusion"
HELP = "single-scan latent diffusion: prepare | vqvae | diffusion | export | evaluate"

ACTIONS = (
    Action("prepare", "scan pairs of a cohort (.npz)", "train:add_prepare_arguments", "train:prepare"),
    Action("vqvae", "train the image or the GTV VQ-VAE", "train:add_vqvae_arguments", "train:fit_vqvae",
           describe=True),
    Action("diffusion", "train the latent denoiser (CFG class dropout)", "train:add_diffusion_arguments",
           "train:fit_diffusion", describe=True),
    Action("export", "ONNX export, parity, registry family", "export:add_arguments", "export:export", describe=True),
    Action("evaluate", "PSNR/SSIM/MSE vs the identity baseline, w and class", "evaluate:add_arguments",
           "evaluate:evaluate", describe=True),
)

add_arguments, run = family_command("gliomaforecast_training.latent", ACTIONS)
