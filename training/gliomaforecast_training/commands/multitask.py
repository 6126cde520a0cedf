"""The multi-task diffusion forecaster's network: build triplet examples of a cohort (``prepare``), train (``fit``;
``--device cuda``, torchrun DDP), export to ONNX with parity and register it (``export``), validation figures per
gap bin with image metrics (``evaluate``), the measured effect of the RT weight's gamma (``loss-study``)."""

from __future__ import annotations

from ..common.command import Action, family_command

NAME = "multitask"
HELP = "multi-task diffusion network: prepare | fit | export | evaluate | loss-study"

ACTIONS = (
    Action("prepare", "triplet examples of a cohort (.npz)", "train:add_prepare_arguments", "train:prepare"),
    Action("fit", "train (DDP under torchrun, --device cuda)", "train:add_fit_arguments", "train:fit", describe=True),
    Action("export", "ONNX export, parity, registry family", "export:add_arguments", "export:export", describe=True),
    Action("evaluate", "validation figures per gap bin, PSNR/SSIM", "evaluate:add_arguments", "evaluate:main_with",
           describe=True),
    Action("loss-study", "effect of gamma: errors by dose region", "loss_study:add_arguments", "loss_study:main_with",
           describe=True),
)

add_arguments, run = family_command("gliomaforecast_training.multitask", ACTIONS)
