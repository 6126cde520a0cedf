"""Train the tumor-evolution network (``train``; also under ``torchrun`` for DDP) or export a checkpoint to
ONNX, check parity, evaluate on held-out patients and register it in models.json (``export``)."""

from __future__ import annotations

from ..common.command import Action, family_command

NAME = "evolution"
HELP = "tumor-evolution (deformation) network: train | export"

ACTIONS = (
    Action("train", "train (DDP under torchrun)", "train:add_arguments", "train:train", describe=True),
    Action("export", "ONNX export, parity, evaluation, registry", "export:add_arguments", "export:export",
           describe=True),
)

add_arguments, run = family_command("gliomaforecast_training.evolution", ACTIONS)
