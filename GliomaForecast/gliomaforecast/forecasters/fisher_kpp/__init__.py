"""The biophysical family: the Fisher-KPP reaction-diffusion solver (:mod:`.solver`), the fit of its speed to the
prior scans (:mod:`.fit`), the two-scan forecaster (:mod:`.forecaster`) and the single-scan infiltration tail
(:mod:`.infiltration`, forecaster :mod:`.tail`).

Layer 3: imports the forecaster base and the layers below; never the orchestration.
"""
