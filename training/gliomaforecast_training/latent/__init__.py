"""The single-scan latent diffusion forecaster's networks: data (scan pairs), two VQ-VAEs (images, GTV), the
latent diffusion U-Net with classifier-free guidance of the outcome class, training, export, evaluation.

Modules: ``data`` (scan pairs), ``net``, ``train`` (on ``..common.schedule``), ``export``, ``evaluate``.
May import the core (``gliomaforecast``), torch, MONAI and ``..common``; never another family or ``..cohort``.
"""
