"""The multi-task diffusion forecaster's training code: data (triplets of scans), net (shared encoder, generative
and predictive decoders from MONAI blocks), loss (diffusion + radiotherapy-weighted BCE), train (CPU, CUDA,
torchrun DDP), export (ONNX step network with parity check, registry family) and evaluate (validation figures).

The channel layout, crops and units come from the core (``gliomaforecast.forecasters.crops``); the noise schedule
from ``..common.schedule``.

May import the core (``gliomaforecast``), torch, MONAI and ``..common``; never another family or ``..cohort``.
"""
