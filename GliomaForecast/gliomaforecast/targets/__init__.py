"""Radiotherapy target volumes, all in mm on the grid's spacing: the standard margin CTV and the iso-volumetric CTV
(:mod:`.ctv`), the planning convention of the standard plan (:mod:`.standard_plan`: estro-eano or flair) and the one
rule that builds both CTVs of a case (:mod:`.volumes`).

Layer 2: imports the base modules and :mod:`gliomaforecast.sdf`; never a forecaster, the orchestration or an output.
"""
