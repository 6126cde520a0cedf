"""The growth-model-guided DDIM forecaster's networks (Mechanistic learning, METHODS.md section 2): an
unconditional DDPM on FLAIR slices and a tumour-burden regressor R(x_t, t) whose input gradient is part of its
ONNX graph.

Modules: ``data`` (FLAIR crops), ``net``, ``loss`` (on ``..common.schedule``), ``train``, ``export``, ``evaluate``.
May import the core (``gliomaforecast``), torch, MONAI and ``..common``; never another family or ``..cohort``.
"""
