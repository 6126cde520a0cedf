"""The virtual patient cohort (docs/cohort.md): Fisher-Kolmogorov glioma growth with resection and radiotherapy on
deformed MNI152 anatomy, imaged as BraTS labels and MR contrasts and written as case manifests.

Modules: ``cohort`` (patients, follow-up schedules, the cohort index, realism measures), ``cohort_seeds`` (the
fixed seeds of the training, validation and benchmark cohorts), ``anatomy`` (templates and deformation),
``tumor_growth`` (the solver), ``treatment`` (resection and radiotherapy), ``imaging`` (labels and images),
``growth_population`` (the growth model's population prior fitted on a cohort).

The generator is frozen: the same seed gives byte-identical files. May import the core (``gliomaforecast``), numpy,
scipy, SimpleITK and nilearn; never torch, ``..common`` or a model family.
"""
