"""Both radiotherapy target volumes of a case, built by one rule for every path (forecast, ``ctv`` command,
Slicer logic).

Rule (ESTRO-EANO 2023 glioblastoma guideline: the CTV is built from the resection cavity plus residual tumour, and
edited at anatomical barriers):

1. The seed is the tumour of the planning convention (:mod:`standard_plan`: the tumour core, BraTS labels 1 + 3, for
   ``estro-eano``; the whole GTV for ``flair``; passed here as ``gtv``) plus the resection cavity (BraTS label 4,
   where the case has labels), with its interior holes filled (3D, face-connected background).
2. CTV standard: every voxel within the margin (mm; Euclidean, or geodesic around ``barrier``) of the seed, inside
   the brain mask, seed included (:func:`ctv.standard_ctv`); then its interior holes are filled.
3. CTV forecast: the same number of voxels, highest forecast score first (:func:`ctv.isovolumetric_ctv`), seed
   included, candidates inside the brain mask and off the barrier; then its interior holes are filled.
4. No CTV has an interior hole, except barrier voxels and voxels outside the brain mask, which are left out on
   purpose (a ventricle enclosed by the CTV stays out of it).

Filling the forecast CTV's holes can add voxels; then the number of ranked voxels is the largest that keeps the
filled CTV within the standard CTV's volume (bisection), so it can fall a few voxels short of iso-volumetric
(``Targets.forecast_shortfall``; zero on smooth forecast maps, where no hole appears).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import defaults, sdf
from . import ctv
from .standard_plan import CAVITY_LABEL

_MAX_BISECTIONS = 24


@dataclass(frozen=True)
class Targets:
    """``seed`` (GTV + cavity, holes filled), ``standard`` and ``forecast`` CTVs (bool, on the input grid), and how
    many voxels the forecast CTV has fewer than the standard one (0 when iso-volumetric)."""

    seed: np.ndarray
    standard: np.ndarray
    forecast: np.ndarray
    forecast_shortfall: int


def fill_holes(mask: np.ndarray, keep_out: np.ndarray | None = None) -> np.ndarray:
    """``mask`` with every enclosed background region filled (3D, face connectivity), except ``keep_out`` voxels
    that are not in ``mask`` (bool)."""
    filled = ndimage.binary_fill_holes(mask)
    if keep_out is not None:
        filled &= ~keep_out | mask
    return filled


def cavity_from_labels(labels: np.ndarray | None) -> np.ndarray | None:
    """The resection cavity (BraTS label 4) of a label map, or None without labels or without a cavity."""
    if labels is None:
        return None
    cavity = np.asarray(labels) == CAVITY_LABEL
    return cavity if cavity.any() else None


def target_seed(gtv: np.ndarray, cavity: np.ndarray | None = None) -> np.ndarray:
    """GTV plus cavity with interior holes filled (bool): what every CTV contains."""
    seed = np.asarray(gtv, dtype=bool)
    if cavity is not None:
        seed = seed | np.asarray(cavity, dtype=bool)
    return fill_holes(seed)


def _keep_out(shape: tuple[int, ...], brain_mask: np.ndarray | None, barrier: np.ndarray | None) -> np.ndarray | None:
    """Voxels no CTV may take (outside the brain mask, on the barrier), or None when there are none."""
    if brain_mask is None and barrier is None:
        return None
    keep_out = np.zeros(shape, bool) if brain_mask is None else ~np.asarray(brain_mask, dtype=bool)
    if barrier is not None:
        keep_out |= np.asarray(barrier, dtype=bool)
    return keep_out


def standard_target(
    gtv: np.ndarray,
    spacing: Sequence[float],
    margin_mm: float = defaults.MARGIN_MM,
    *,
    cavity: np.ndarray | None = None,
    brain_mask: np.ndarray | None = None,
    barrier: np.ndarray | None = None,
) -> np.ndarray:
    """The standard CTV of rule 2 (bool): the seed grown by ``margin_mm`` (mm) inside the brain, around the barrier,
    holes filled. It does not depend on any forecast."""
    seed = target_seed(gtv, cavity)
    grown = ctv.standard_ctv(seed, spacing, margin_mm, brain_mask=brain_mask, barrier=barrier)
    return fill_holes(grown, _keep_out(seed.shape, brain_mask, barrier))


def build_targets(
    gtv: np.ndarray,
    spacing: Sequence[float],
    margin_mm: float = defaults.MARGIN_MM,
    *,
    score: np.ndarray | None = None,
    cavity: np.ndarray | None = None,
    brain_mask: np.ndarray | None = None,
    barrier: np.ndarray | None = None,
    standard: np.ndarray | None = None,
) -> Targets:
    """Both CTVs by the module's rule. ``spacing`` and ``margin_mm`` in mm; ``score`` (higher = treat first; default:
    the seed's own probability map) ranks the forecast CTV. Masks are bool arrays on one grid. ``standard``: the
    :func:`standard_target` of the same arguments when it was built before (several forecasts of one case share
    it); None builds it here."""
    seed = target_seed(gtv, cavity)
    keep_out = _keep_out(seed.shape, brain_mask, barrier)
    if standard is None:
        standard = standard_target(gtv, spacing, margin_mm, cavity=cavity, brain_mask=brain_mask, barrier=barrier)
    candidates = None if keep_out is None else ~keep_out | seed
    if score is None:
        score = sdf.tumor_probability(seed, spacing)
    n = int(np.count_nonzero(standard))

    def ranked(k: int) -> np.ndarray:
        return fill_holes(ctv.isovolumetric_ctv(score, k, spacing, gtv=seed, brain_mask=candidates), keep_out)

    forecast = ranked(n)
    if np.count_nonzero(forecast) > n:  # filled holes pushed it over: the most ranked voxels that fit, by bisection
        lo, hi = int(np.count_nonzero(seed)), n
        best = ranked(lo)
        for _ in range(_MAX_BISECTIONS):
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
            trial = ranked(mid)
            if np.count_nonzero(trial) <= n:
                lo, best = mid, trial
            else:
                hi = mid
        forecast = best
    return Targets(seed, standard, forecast, n - int(np.count_nonzero(forecast)))
