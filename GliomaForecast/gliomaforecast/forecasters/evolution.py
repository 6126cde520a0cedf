"""Evolution forecasters: the last signed distance carried forward by the tumor-evolution field.

1. The evolution network gives the displacement v (mm) between the last two GTVs (gap dl days).
2. v is extrapolated linearly to the target gap (target day - last scan day) and warps the last
   signed distance phi (mm) and the last FLAIR.
3. The tumor volume (mL) at the target day:
   - ``evolution``: the growth model's median at the target day (the warped phi is re-levelled so
     that its tumor region, inside the brain mask, holds that volume);
   - ``evolution-field``: the warped phi's own tumor region {phi < 0} (the field's extrapolation).
     On the held-out virtual cohort (docs/evaluation.md) this beat the growth-scaled volume, whose
     post-RT extrapolations overshoot and undershoot, so it is the default forecaster.
   The probability is the logistic map of the exact signed distance (mm) of that region.
4. Uncertainty: ``samples`` volumes drawn (with the seed) from the growth model's bootstrap distribution at
   the target day, relative to its median and applied to the volume of step 3, give as many probability
   maps; the uncertainty is their per-voxel standard deviation.
"""

from __future__ import annotations

import numpy as np

from ..deformation import case_evolution_field, extrapolate, warp
from ..errors import InputError
from ..models import load_model
from .base import ForecasterOutput, ForecastRequest, ProgressFn, probability_for_volume

MODEL_ID = "evolution"


class EvolutionForecaster:
    """``volume`` is ``"growth"`` (the growth model's median) or ``"field"`` (the warped region's own)."""

    def __init__(self, volume: str = "growth") -> None:
        if volume not in ("growth", "field"):
            raise ValueError(f"volume must be 'growth' or 'field', got {volume!r}")
        self.volume = volume
        self.name = "evolution" if volume == "growth" else "evolution-field"

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, last = request.case, request.last
        spacing = request.spacing
        model = load_model(MODEL_ID, prefer_gpu=request.device != "cpu")
        if request.device == "cuda" and model.provider != "CUDAExecutionProvider":
            raise InputError(None, "device", "cuda was requested but onnxruntime's CUDA provider does not load here")
        progress(0.1, "evolution field between the last two scans")
        field, gap = case_evolution_field(case, -2, -1, model=model)
        horizon = request.target_day - last.day
        moved = extrapolate(field, gap, horizon)
        phi = warp(case.gtv_distance(last), moved, spacing)

        brain = case.brain_mask()
        median, lower, upper = (float(v[0]) for v in request.growth.predict([request.target_day]))
        inside = phi < 0 if brain is None else (phi < 0) & brain
        field_ml = float(np.count_nonzero(inside) * case.grid.voxel_volume_ml)
        volume = median if self.volume == "growth" else field_ml
        progress(0.5, f"probability map at {volume:.2f} mL ({self.volume})")
        probability = probability_for_volume(phi, volume, spacing, brain)

        draws = request.growth.bootstrap_curves([request.target_day])[:, 0]
        rng = np.random.default_rng(request.seed)
        relative = rng.choice(draws, size=request.samples, replace=True) / max(median, 1e-9)
        samples = []
        for i, r in enumerate(relative):
            progress(0.5 + 0.45 * i / len(relative), f"uncertainty: sample {i + 1} of {len(relative)}")
            samples.append(probability_for_volume(phi, volume * r, spacing, brain))
        maps = np.stack(samples)
        uncertainty = maps.std(axis=0).astype(np.float32)

        image = warp(case.image(last, "flair"), moved, spacing) if "flair" in last.images else None
        source = "growth model median" if self.volume == "growth" else "the field's warped tumor region"
        return ForecasterOutput(
            probability=probability,
            uncertainty=uncertainty,
            image=image,
            displacement=moved,
            models=[model.provenance()],
            notes=[
                f"{self.name}: field over {gap:g} days scaled to {horizon:g} days; volume {volume:.2f} mL "
                f"({source}; growth model {median:.2f} mL, 95% band {lower:.2f}-{upper:.2f}; field "
                f"{field_ml:.2f} mL); uncertainty from {request.samples} bootstrap volumes"
            ],
        )
