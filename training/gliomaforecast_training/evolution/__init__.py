"""The tumor-evolution network (the ``evolution`` model): a 2D U-Net from two GTV signed distances and the time gap
to a displacement field (mm), trained on slice pairs of the virtual cohort and exported as one ONNX model.

Modules: ``data`` (slice pairs from a cohort or synthetic blobs), ``net`` (the MONAI U-Net with FiLM time
conditioning), ``loss`` (warp loss + smoothness), ``train`` (single process or DDP under ``torchrun``), ``export``
(ONNX + parity + registry entry), ``evaluate`` (held-out metrics through the runtime).

May import the core (``gliomaforecast``), torch, MONAI and ``..common``; never another family or ``..cohort``.
"""
