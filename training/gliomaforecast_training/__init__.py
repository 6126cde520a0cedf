"""GliomaForecast training package: virtual cohort, networks, losses, trainers and ONNX export.

Imports the core (``gliomaforecast``) plus torch and MONAI; produces Resources/Models/*. Layout: ``cohort/`` (the
frozen virtual cohort generator), one package per model family (``evolution/``, ``multitask/``, ``guided/``,
``latent/``, ``recurrence_unet/``), ``common/`` (what the families share) and ``commands/`` (the sub-commands of
``gliomaforecast-train``, ``cli``). A family imports the core and ``common`` only, never another family.
"""
