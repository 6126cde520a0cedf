"""The recurrence U-Net ensemble (PREDICT-GBM "Custom U-Net"): train one member (``train``; ``--seed`` per member,
``--device cuda``, DDP under ``torchrun``), export the members to ONNX with parity checks and register the family
(``export``), choose the post-processing on a validation cohort (``tune``), plan-level figures of the registered
family on a cohort (``plan-metrics``)."""

from __future__ import annotations

from ..common.command import Action, family_command

NAME = "recurrence-unet"
HELP = "recurrence U-Net ensemble: train | export | tune | plan-metrics"

ACTIONS = (
    Action("train", "train one ensemble member (DDP under torchrun, --device cuda)", "train:add_arguments",
           "train:train", describe=True),
    Action("export", "ONNX export of the members, parity, registry family", "export:add_arguments", "export:export",
           describe=True),
    Action("tune", "choose the post-processing on a validation cohort", "tune:add_arguments", "tune:tune",
           describe=True),
    Action("plan-metrics", "coverage, Dice and HD95 of the forecast and standard CTVs on a cohort",
           "plan_metrics:add_arguments", "plan_metrics:run", describe=True),
)

add_arguments, run = family_command("gliomaforecast_training.recurrence_unet", ACTIONS)
