"""The growth-model-guided DDIM forecaster's networks: FLAIR crops of a cohort (``prepare``), train the DDPM or the
burden regressor (``fit``; ``--device cuda``), export both to ONNX with parity checks and register the family
(``export``), validation / benchmark figures on a fixed subsample of horizon pairs (``evaluate``)."""

from __future__ import annotations

from ..common.command import Action, family_command

NAME = "guided-ddim"
HELP = "growth-model-guided DDIM: prepare | fit | export | evaluate"

ACTIONS = (
    Action("prepare", "FLAIR crops of a cohort (.npz)", "train:add_prepare_arguments", "train:prepare"),
    Action("fit", "train the DDPM or the burden regressor", "train:add_fit_arguments", "train:fit", describe=True),
    Action("export", "ONNX export, parity, registry family", "export:add_arguments", "export:export", describe=True),
    Action("evaluate", "figures on a subsample of horizon pairs", "evaluate:add_arguments", "evaluate:run",
           describe=True),
)

add_arguments, run = family_command("gliomaforecast_training.guided", ACTIONS)
