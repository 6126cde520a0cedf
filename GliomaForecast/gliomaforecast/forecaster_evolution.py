"""The evolution forecaster: the last signed distance carried forward by the tumor-evolution field.

1. The evolution network gives the displacement v (mm) between the last two GTVs (gap dl days).
2. v is extrapolated linearly to the target gap (target day - last scan day) and warps the last
   signed distance phi (mm) and the last FLAIR.
3. The warped phi is re-levelled so that its tumor region holds the growth model's median volume (mL)
   at the target day, inside the brain mask; the probability is the logistic map of that region's
   exact signed distance.
4. Uncertainty: ``samples`` volumes drawn (with the seed) from the growth model's bootstrap
   distribution at the target day give as many probability maps; their standard deviation per voxel.
"""

from __future__ import annotations

import numpy as np

from .deformation import case_evolution_field, extrapolate, warp
from .errors import InputError
from .forecast import ForecasterOutput, ForecastRequest, ProgressFn, probability_for_volume
from .models import load_model
from . import sdf

MODEL_ID = "evolution"


class EvolutionForecaster:
    name = "evolution"

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, last = request.case, request.last
        spacing = request.spacing
        model = load_model(MODEL_ID, prefer_gpu=request.device != "cpu")
        if request.device == "cuda" and model.provider != "CUDAExecutionProvider":
            raise InputError("--device", None, "cuda was requested but onnxruntime's CUDA provider does not load here")
        progress("evolution field between the last two scans")
        field, gap = case_evolution_field(case, -2, -1, model=model)
        moved = extrapolate(field, gap, request.target_day - last.day)
        phi = warp(sdf.signed_distance(case.gtv(last), spacing), moved, spacing)

        brain = case.brain_mask()
        median, lower, upper = (float(v[0]) for v in request.growth.predict([request.target_day]))
        progress(f"probability map at {median:.2f} mL (95% band {lower:.2f}-{upper:.2f} mL)")
        probability = probability_for_volume(phi, median, spacing, brain)

        draws = request.growth.bootstrap_curves([request.target_day])[:, 0]
        rng = np.random.default_rng(request.seed)
        volumes = rng.choice(draws, size=request.samples, replace=True)
        maps = np.stack([probability_for_volume(phi, v, spacing, brain) for v in volumes])
        uncertainty = maps.std(axis=0).astype(np.float32)

        image = warp(case.image(last, "flair"), moved, spacing) if "flair" in last.images else None
        return ForecasterOutput(
            probability=probability,
            uncertainty=uncertainty,
            image=image,
            displacement=moved,
            models=[{"id": model.spec.id, "version": model.spec.version, "file": model.spec.file,
                     "sha256": model.spec.sha256, "provider": model.provider}],
            notes=[f"evolution: field over {gap:g} days scaled to {request.target_day - last.day:g} days; "
                   f"volume {median:.2f} mL (growth model median), uncertainty from {request.samples} "
                   "bootstrap volumes"],
        )
