"""The persistence forecaster: the last scan unchanged. The baseline every model must beat.

Probability: the logistic map of the last GTV's signed distance (mm). Uncertainty: zero (the baseline
claims none). Image: the last FLAIR. Displacement: none (no field is written).
"""

from __future__ import annotations

import numpy as np

from .. import sdf
from .base import ForecasterOutput, ForecastRequest, ProgressFn


class PersistenceForecaster:
    name = "persistence"

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, last = request.case, request.last
        probability = sdf.tumor_probability(case.gtv(last), request.spacing)
        image = case.image(last, "flair") if "flair" in last.images else None
        return ForecasterOutput(
            probability=probability,
            uncertainty=np.zeros_like(probability),
            image=image,
            notes=["persistence: the last GTV's probability map, unchanged; no uncertainty model (zeros)"],
        )
