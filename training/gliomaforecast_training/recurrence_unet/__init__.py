"""The recurrence U-Net (PREDICT-GBM, "Custom U-Net"): a 3D MONAI U-Net deep ensemble that maps the RT planning
scan (labels, tissue maps, T1CE, FLAIR, ADC) to the probability of recurrence, trained on the virtual cohort's
``recurrence`` protocol targets and exported as one ONNX model family.

Modules: ``data`` (samples from a cohort or synthetic blobs, augmentation, edge softening), ``net`` (the U-Net),
``loss`` (masked BCE + per-patient Tversky "progression coverage coefficient"), ``train`` (one member; DDP under
``torchrun``), ``export`` (ONNX + parity + registry family), ``tune`` (post-processing on a validation cohort),
``plan_metrics`` (plan-level figures); ``gliomaforecast-train recurrence-unet`` runs them.

May import the core (``gliomaforecast``), torch, MONAI and ``..common``; never another family or ``..cohort``.
"""
