"""Growth probability maps of the guided DDIM from its generated FLAIR crops (numpy + scikit-image).

* Growth map of one generation (the paper's definition): the difference generated - last (model units, inside the
  brain) binarised at its Otsu threshold, never below ``MIN_CHANGE`` (a noise floor: Otsu splits any
  distribution, also one without change), kept within ``REACH_MM`` of the last GTV (the DDPM's reconstruction
  error far from the tumour is not growth: on the validation cohort it gave HD95 of 45-54 mm without this
  limit); the growth probability map is the mean over generations.
* Shrinkage map of one generation: the same rule on last - generated (the FLAIR hyperintensity fading).
* Tumour probability of one generation (the map the CTVs use; "the growth model says how much, the diffusion
  says where"): the tumour holds the volume the generation's growth-model draw gives (mL); its voxels are those
  nearest the last GTV by signed distance (mm), a voxel where the generation grows counting ``growth_mm``
  nearer and one where it shrinks ``growth_mm`` farther (iso-volumetric selection,
  ``base.probability_for_volume``), then the logistic signed-distance probability of that region. The forecast
  is the mean over generations and the uncertainty their per-voxel standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.filters import threshold_otsu

from ..base import probability_for_volume

MIN_CHANGE = 0.3  # model units (2 FLAIR / scale - 1): 15 % of the FLAIR's 99th percentile in the brain
REACH_MM = 15.0  # growth and shrinkage count only within this distance (mm) of the last GTV
GROWTH_MM = 15.0  # how much nearer (mm) a growing voxel ranks, farther a shrinking one (chosen on validation)


def otsu_change(change: np.ndarray, brain: np.ndarray, min_change: float = MIN_CHANGE) -> np.ndarray:
    """Binary (float32) map of ``change`` (n, h, w) above max(Otsu threshold inside ``brain`` > 0.5, min_change)."""
    inside = brain > 0.5
    values = change[inside]
    thr = min_change
    if values.size and np.ptp(values) > 0:
        thr = max(float(threshold_otsu(values)), min_change)
    return ((change > thr) & inside).astype(np.float32)


def near_tumour(phi_last: np.ndarray, reach_mm: float = REACH_MM) -> np.ndarray:
    """Where growth or shrinkage may count: the last GTV's signed distance (mm) <= ``reach_mm`` (float32 0/1)."""
    return (np.asarray(phi_last) <= reach_mm).astype(np.float32)


def generation_probability(
    phi_last: np.ndarray,
    growth: np.ndarray,
    shrink: np.ndarray,
    volume_ml: float,
    spacing: Sequence[float],
    brain: np.ndarray | None,
    growth_mm: float = GROWTH_MM,
) -> np.ndarray:
    """Tumour probability (float32) of one generation: the ``volume_ml`` (mL) of ``brain`` voxels with the lowest
    ``phi_last - growth_mm * growth + growth_mm * shrink`` (``phi_last`` the last GTV's signed distance, mm;
    ``growth`` / ``shrink`` 0/1 maps), as the logistic signed-distance probability of that region."""
    score = np.asarray(phi_last, np.float64) - growth_mm * growth + growth_mm * shrink
    return probability_for_volume(score, volume_ml, spacing, brain).astype(np.float32)
