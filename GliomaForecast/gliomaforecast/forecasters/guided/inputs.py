"""Inputs of the guided DDIM forecaster's networks, built from a case by the core (numpy only).

The training package builds its slices with these same functions, so forecaster and trainer cannot disagree on
crops or units. Per axial slice: a ``CROP`` x ``CROP`` crop at ``PIXEL_MM`` (2 mm) pixels centred (y, x) on the
centre of mass of the union of two scans' GTVs (the last two at forecast time), on the slices within ``REACH_MM``
(training) or ``FORECAST_REACH_MM`` (forecast) of either GTV along z.

* image units: ``2 FLAIR / scale - 1``, scale = the FLAIR's 99th percentile in the brain
  (``crops.intensity_scale``);
* burden: GTV area / brain area inside the crop (dimensionless; both counted on the crop's 2 mm pixels, the GTV
  and brain masks interpolated linearly, so a partial pixel counts partly). Without a brain mask the brain is
  FLAIR > 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .. import crops as mi

if TYPE_CHECKING:
    from ...io.case import Case

PIXEL_MM = mi.PIXEL_MM
CROP = mi.CROP
REACH_MM = 20.0  # training crops: slices within this distance (mm, z) of either GTV
FORECAST_REACH_MM = 6.0  # forecast crops: slices within this distance of either GTV (run time; beyond it the
# whole-tumour target of an empty slice is 0, so guidance would not act there)
MIN_BRAIN_FRACTION = 0.05  # a crop with less brain than this (of its pixels) has no defined burden


@dataclass
class ScanCrops:
    """Crops of one scan (``second``) on the slices ``z``; ``image`` (n, crop, crop) in model units, ``gtv`` and
    ``brain`` (n, crop, crop) fractions in [0, 1], ``burden`` (n,) dimensionless; ``scale`` the FLAIR scale,
    ``center_yx_mm`` the crop centre (mm from voxel 0)."""

    z: np.ndarray
    image: np.ndarray
    gtv: np.ndarray
    brain: np.ndarray
    burden: np.ndarray
    scale: float
    center_yx_mm: tuple[float, ...]


def to_model_units(flair: np.ndarray, scale: float) -> np.ndarray:
    """FLAIR (scan units) -> ``2 FLAIR / scale - 1`` (float32)."""
    return (2.0 * np.asarray(flair, np.float32) / np.float32(scale) - 1.0).astype(np.float32)


def from_model_units(x: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of :func:`to_model_units` (scan units, float32)."""
    return ((np.asarray(x, np.float32) + 1.0) * np.float32(scale) / 2.0).astype(np.float32)


def crop_burden(gtv: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """GTV area / brain area per crop ((n, crop, crop) fractions -> (n,)); 0 where the brain area is below
    ``MIN_BRAIN_FRACTION`` of the crop."""
    b = brain.sum(axis=(1, 2))
    ok = b >= MIN_BRAIN_FRACTION * brain[0].size
    return np.where(ok, gtv.sum(axis=(1, 2)) / np.maximum(b, 1.0), 0.0).astype(np.float32)


def scan_crops(case: Case, first: int, second: int, crop: int = CROP, reach_mm: float = REACH_MM) -> ScanCrops:
    """Crops of scan ``second`` centred on GTV ``first`` | GTV ``second`` on the slices within ``reach_mm`` (mm, z)
    of either; ValueError when both GTVs are empty."""
    spacing = tuple(float(s) for s in case.grid.spacing)
    tps = case.timepoints
    g1, g2 = case.gtv(tps[first]), case.gtv(tps[second])
    union = g1 | g2
    if not union.any():
        raise ValueError("no tumour in either scan")
    center = tuple(float(c) for c in np.array(ndimage.center_of_mass(union))[1:] * np.asarray(spacing[1:]))
    has = np.nonzero(union.any(axis=(1, 2)))[0]
    reach = int(np.ceil(reach_mm / spacing[0]))
    z = np.arange(max(0, has.min() - reach), min(union.shape[0] - 1, has.max() + reach) + 1)
    flair = case.image(tps[second], "flair")
    brain_mask = case.brain_mask()
    brain_vol = (flair > 0) if brain_mask is None else brain_mask
    scale = mi.intensity_scale(flair, brain_mask)
    cut = lambda v: mi.crop_slices(np.asarray(v, np.float32), z, spacing[1:], center, crop)  # noqa: E731
    gtv, brain = cut(g2), cut(brain_vol)
    return ScanCrops(z, to_model_units(cut(flair), scale), gtv, brain, crop_burden(gtv, brain), scale, center)


def paste(base: np.ndarray, crops: np.ndarray, z: np.ndarray, spacing_yx, center_yx_mm) -> np.ndarray:
    """Crops (n, crop, crop) at ``PIXEL_MM`` back onto a copy of ``base`` (case grid) on slices ``z``
    (``crops.paste_slices``)."""
    return mi.paste_slices(base, crops, z, spacing_yx, center_yx_mm, PIXEL_MM)
