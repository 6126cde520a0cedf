"""What a forecast writes: forecast.json's record and the output folder's names (:mod:`.record`), the HTML report
(:mod:`.report`) and its figures (:mod:`.figures`), and the folder writer that puts them together (:mod:`.writer`).

Layer 5: imports the orchestration (:mod:`gliomaforecast.forecast`), the warnings (:mod:`gliomaforecast.plausibility`)
and everything below; only the commands, the evaluation's figures and the DICOM export import it.
"""
