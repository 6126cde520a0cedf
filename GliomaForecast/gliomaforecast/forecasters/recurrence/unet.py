"""The recurrence U-Net forecaster (PREDICT-GBM's deep ensemble): where the tumour will recur after RT.

1. Inputs (:mod:`gliomaforecast.forecasters.recurrence.inputs`): the case's LAST scan is the RT planning scan; its
   labels, the wm/gm/csf maps, T1CE, FLAIR and ADC (zero channel when absent) on 2 mm voxels, a 128 mm cube centred
   on the planning GTV.
2. Every member of the ``recurrence-unet`` model family (ONNX, registry) gives a recurrence probability; the
   map is their mean, the uncertainty their per-voxel standard deviation (the deep-ensemble spread).
3. Post-processing (constants in the registry entry, chosen on the validation cohort): Gaussian smoothing of
   ``smooth_mm`` (mm); then, as PREDICT-GBM's "regularisation towards the standard plan", the score
   ``(1 - w) p + w max(0, 1 - d / prior_mm)`` with d the distance (mm) to the planning GTV and w =
   ``prior_weight``; scores below ``floor`` are set to 0 (they do not score), and so are voxels farther than
   ``window_mm`` (mm) from the GTV when it is set. Zero outside the brain and outside the cube.
4. The orchestration builds the forecast CTV from this map with ``ctv.isovolumetric_ctv``: the standard plan's
   voxel count, the GTV always in, highest score first, and, when fewer voxels score above zero than needed,
   the rest by increasing distance (mm) from the chosen region (PREDICT-GBM's expansion rule).
The target day does not enter: the network predicts the first post-RT progression, whenever it comes.
No predicted image, no displacement field.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ... import sdf
from ...errors import InputError
from ...models import ModelFamily, load_family
from ..base import ForecasterOutput, ForecastRequest, ProgressFn
from .inputs import (
    CROP_VOXELS,
    PIXEL_MM,
    PlanningInputs,
    crop_box,
    gtv_center,
    paste_crop,
    planning_inputs,
    take_crop,
    to_case_grid,
)

MODEL_ID = "recurrence-unet"
DEFAULT_POSTPROCESS = {"smooth_mm": 2.0, "prior_weight": 0.0, "prior_mm": 30.0, "floor": 0.0, "window_mm": None}


def ensemble_maps(
    family: ModelFamily, inputs: PlanningInputs, progress: ProgressFn | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """(mean, std) of the members' probabilities on the crop (float32, ``CROP_VOXELS``) and the crop box on the
    working grid."""
    box = crop_box(gtv_center(inputs.gtv), inputs.brain.shape, CROP_VOXELS)
    x = take_crop(inputs.x, box)[None]
    maps = []
    names = list(family.members)
    for i, name in enumerate(names):
        if progress:
            progress(0.1 + 0.7 * i / len(names), f"ensemble member {i + 1} of {len(names)}")
        maps.append(family[name].run({"channels": x})["probability"][0, 0])
    stack = np.stack(maps).astype(np.float32)
    return stack.mean(0), stack.std(0), box


def score_map(
    mean: np.ndarray,
    gtv: np.ndarray,
    brain: np.ndarray,
    spacing: Sequence[float],
    smooth_mm: float,
    prior_weight: float,
    prior_mm: float,
    floor: float,
    window_mm: float | None = None,
) -> np.ndarray:
    """The post-processed score (float32, 0-1) of the ensemble mean ``mean`` (same grid as ``gtv`` and ``brain``,
    ``spacing`` mm): smoothing, blend with the distance prior, floor, zero outside the brain and, with
    ``window_mm``, zero farther than that (mm) from the GTV (no isolated far islands in the plan; see the module
    docstring)."""
    p = np.asarray(mean, dtype=np.float32)
    if smooth_mm > 0:
        p = ndimage.gaussian_filter(p, [smooth_mm / s for s in spacing])
    d = np.maximum(sdf.signed_distance(gtv, spacing), 0.0) if prior_weight > 0 or window_mm else None
    if prior_weight > 0:
        assert d is not None
        p = (1.0 - prior_weight) * p + prior_weight * np.clip(1.0 - d / prior_mm, 0.0, 1.0)
    p = np.where(brain & (p >= floor), p, 0.0)
    if window_mm:
        assert d is not None
        p = np.where(d <= window_mm, p, 0.0)
    return np.clip(p, 0.0, 1.0).astype(np.float32)


class RecurrenceUNetForecaster:
    """The ``recurrence-unet`` ensemble on the case's last (planning) scan."""

    name = "recurrence-unet"

    def __init__(self, models_dir: str | None = None) -> None:
        self.models_dir = models_dir

    def predict(self, request: ForecastRequest, progress: ProgressFn) -> ForecasterOutput:
        case, last = request.case, request.last
        family = load_family(MODEL_ID, self.models_dir, prefer_gpu=request.device != "cpu")
        if request.device == "cuda" and any(m.provider != "CUDAExecutionProvider" for m in family.members.values()):
            raise InputError(None, "device", "cuda was requested but onnxruntime's CUDA provider does not load here")
        post = {**DEFAULT_POSTPROCESS, **family.spec.extra.get("postprocess", {})}
        progress(0.0, "planning-scan inputs")
        inputs = planning_inputs(case, last)
        mean, spread, box = ensemble_maps(family, inputs, progress)
        progress(0.85, "post-processing")
        shape = inputs.brain.shape
        score = score_map(
            paste_crop(mean, box, shape),
            inputs.gtv,
            inputs.brain,
            (PIXEL_MM,) * 3,
            post["smooth_mm"],
            post["prior_weight"],
            post["prior_mm"],
            post["floor"],
            post["window_mm"],
        )
        uncertainty = np.where(inputs.brain, paste_crop(spread, box, shape), 0.0)
        probability = np.clip(to_case_grid(score, inputs.case_shape), 0.0, 1.0)
        uncertainty = np.maximum(to_case_grid(uncertainty, inputs.case_shape), 0.0)
        progress(1.0, "done")
        notes = [
            f"recurrence-unet: {len(family.members)} members on the planning scan (day {last.day:g}) in a "
            f"{CROP_VOXELS[0] * PIXEL_MM:g} mm cube at {PIXEL_MM:g} mm; map = member mean (smoothed "
            f"{post['smooth_mm']:g} mm, distance prior weight {post['prior_weight']:g} over "
            f"{post['prior_mm']:g} mm, floor {post['floor']:g}, window {post['window_mm'] or 'none'} mm); "
            "uncertainty = member standard deviation; "
            f"predicts the first post-RT progression (the target day {request.target_day:g} does not enter)"
        ]
        notes += inputs.notes
        notes += heldout_notes(family.spec.extra.get("metrics", {}))
        return ForecasterOutput(
            probability=probability.astype(np.float32),
            uncertainty=uncertainty.astype(np.float32),
            models=family.provenance(),
            notes=notes,
        )


def heldout_notes(metrics: dict) -> list[str]:
    """One line per held-out benchmark in the family's registry ``metrics`` that scored both plans: how much of the
    recurrence the forecast CTV and the standard CTV covered, with the Wilcoxon p, so a user sees whether this CTV
    was better than the standard one where it was measured."""
    lines = []
    for name, result in metrics.items():
        coverage = result.get("coverage") if isinstance(result, dict) else None
        if name == "validation" or not isinstance(coverage, dict):
            continue
        parts = [
            f"{d} {c['forecast_ctv']:.3f} vs {c['standard_ctv']:.3f} (n {c['n']}, p "
            f"{'undefined' if c.get('wilcoxon_p') is None else format(c['wilcoxon_p'], '.2g')})"
            for d, c in coverage.items()
            if {"forecast_ctv", "standard_ctv", "n"} <= set(c)
        ]
        if parts:
            lines.append(
                f"recurrence-unet on the held-out virtual {name.replace('_', ' ')} ({result.get('cohort', '')}): "
                f"recurrence covered by the forecast CTV vs the standard CTV: {'; '.join(parts)}"
            )
    return lines
