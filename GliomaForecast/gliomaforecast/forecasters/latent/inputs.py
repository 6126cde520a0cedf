"""Inputs of the single-scan latent diffusion forecaster, built from one scan by the core (numpy only).

The training package builds its examples with these same functions, so the forecaster and the trainer cannot
disagree on channels, units or crops.

Per axial slice, a ``CROP`` x ``CROP`` crop at ``PIXEL_MM`` (2 mm) pixels centred (in y, x) on the centre of mass of
the scan's GTV (:func:`gliomaforecast.forecasters.crops.crop_slices`):

* image channels ``MODALITIES`` (T1CE, FLAIR), each divided by its intensity scale (99th percentile in the brain,
  or over positive voxels without a brain mask) of the PRE-treatment scan; the post-treatment images of a
  training pair use the pre-treatment scan's scales, so a forecast times that scale is in the input's units;
* the GTV as a 0/1 mask (linear interpolation onto the crop, then > 0.5).

Slices: every axial slice within ``REACH_MM`` (mm, along z) of a slice holding the scan's GTV
(:func:`forecast_slices`): a tumour can grow into neighbouring slices.

Conditioning scalars: the gap (days from the scan to the target) and the outcome class ``NULL`` (unknown,
unconditional), ``RESPONDER`` (the GTV volume at the target is below ``RESPONDER_RATIO`` times the scan's) or
``PROGRESSOR`` (otherwise); :func:`outcome_class`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ...errors import InputError
from ..crops import CROP, PIXEL_MM, crop_slices, intensity_scale

if TYPE_CHECKING:
    from ...io.case import Case, Timepoint

MODALITIES = ("t1ce", "flair")
REACH_MM = 6.0
NULL, RESPONDER, PROGRESSOR = 0, 1, 2
OUTCOMES = {"unknown": NULL, "responder": RESPONDER, "progressor": PROGRESSOR}
RESPONDER_RATIO = 1.0
GAP_CENTER_DAYS = 120.0
GAP_SCALE_DAYS = 60.0
DOSE_SCALE_GY = 60.0

__all__ = [
    "CROP",
    "PIXEL_MM",
    "MODALITIES",
    "REACH_MM",
    "NULL",
    "RESPONDER",
    "PROGRESSOR",
    "OUTCOMES",
    "ScanVolumes",
    "scan_volumes",
    "forecast_slices",
    "image_slices",
    "mask_slices",
    "outcome_class",
    "gap_feature",
    "check_modalities",
    "change_gate",
    "dose_slices",
    "pooled",
]


@dataclass
class ScanVolumes:
    """One scan on its case grid: ``images`` (len(MODALITIES), z, y, x) float32 divided by ``scales``; ``gtv``
    (z, y, x) bool; ``center_yx_mm`` the crop centre (mm from voxel 0, y and x); ``spacing`` (mm, z, y, x)."""

    images: np.ndarray
    scales: tuple[float, ...]
    gtv: np.ndarray
    center_yx_mm: tuple[float, float]
    spacing: tuple[float, ...]


def check_modalities(case: Case, tp: Timepoint, forecaster: str = "latent-diffusion") -> None:
    """InputError naming the manifest field when the scan lacks T1CE or FLAIR (never a silent zero channel)."""
    for m in MODALITIES:
        if m not in tp.images:
            raise InputError(
                case.path,
                f"timepoints[{tp.index}].images.{m}",
                f"{forecaster} needs {m.upper()} at the scan it starts from",
            )


def scan_volumes(
    case: Case, tp: Timepoint, scales: Sequence[float] | None = None, center_yx_mm: Sequence[float] | None = None
) -> ScanVolumes:
    """The normalised images and GTV of scan ``tp``; ``scales`` and ``center_yx_mm`` default to this scan's own
    (give the pre-treatment scan's to express a later scan in the same units and crop). A scan without a GTV
    (an empty mask) is the case's InputError naming the file and field."""
    check_modalities(case, tp)
    spacing = tuple(float(s) for s in case.grid.spacing)
    brain = case.brain_mask()
    gtv = case.gtv(tp)
    raw = [case.image(tp, m) for m in MODALITIES]
    if scales is None:
        scales = tuple(intensity_scale(im, brain) for im in raw)
    images = np.stack([im / np.float32(s) for im, s in zip(raw, scales)]).astype(np.float32)
    if center_yx_mm is None:
        com = np.array(ndimage.center_of_mass(gtv))[1:] * np.asarray(spacing[1:])
        center_yx_mm = (float(com[0]), float(com[1]))
    return ScanVolumes(
        images, tuple(float(s) for s in scales), gtv, (float(center_yx_mm[0]), float(center_yx_mm[1])), spacing
    )


def forecast_slices(gtv: np.ndarray, spacing_z: float, reach_mm: float = REACH_MM) -> np.ndarray:
    """Axial slices within ``reach_mm`` (mm, along z) of a slice holding the GTV (empty when the GTV is)."""
    has = np.nonzero(np.asarray(gtv).any(axis=(1, 2)))[0]
    if has.size == 0:
        return has
    reach = int(np.ceil(reach_mm / spacing_z))
    return np.arange(max(0, has.min() - reach), min(gtv.shape[0] - 1, has.max() + reach) + 1)


def image_slices(vol: ScanVolumes, z: Sequence[int] | np.ndarray, crop: int = CROP) -> np.ndarray:
    """Image crops (len(z), len(MODALITIES), crop, crop) float32 of slices ``z``."""
    sp = vol.spacing[1:]
    return np.stack([crop_slices(ch, z, sp, vol.center_yx_mm, crop) for ch in vol.images], axis=1)


def mask_slices(vol: ScanVolumes, z: Sequence[int] | np.ndarray, crop: int = CROP) -> np.ndarray:
    """GTV crops (len(z), 1, crop, crop) float32 0/1 of slices ``z``."""
    m = crop_slices(vol.gtv.astype(np.float32), z, vol.spacing[1:], vol.center_yx_mm, crop)
    return (m > 0.5).astype(np.float32)[:, None]


def outcome_class(volume_pre_ml: float, volume_post_ml: float) -> int:
    """RESPONDER when the GTV volume (mL) at the target is below RESPONDER_RATIO x the scan's, else PROGRESSOR."""
    return RESPONDER if volume_post_ml < RESPONDER_RATIO * volume_pre_ml else PROGRESSOR


def gap_feature(gap_days: float | np.ndarray) -> np.ndarray:
    """The gap's network feature: (gap - 120 days) / 60 days (float32)."""
    return ((np.asarray(gap_days, np.float64) - GAP_CENTER_DAYS) / GAP_SCALE_DAYS).astype(np.float32)


def change_gate(region: np.ndarray, pixel_mm: float, margin_mm: float, feather_mm: float) -> np.ndarray:
    """Weight 0-1 of the decoded change per pixel of 2D crops ``region`` (n, H, W) bool (where the tumour is before
    or after): 1 within ``margin_mm`` (mm, in-plane) of the region, falling linearly to 0 over the next
    ``feather_mm`` (mm); 0 everywhere on a crop without region. The "gated" image forecast is
    scan + gate x (decoded post - decoded pre): the scan itself where no tumour change is expected."""
    region = np.asarray(region, bool)
    gate = np.zeros(region.shape, np.float32)
    for i, r in enumerate(region):
        if r.any():
            d = ndimage.distance_transform_edt(~r, sampling=(pixel_mm, pixel_mm))
            ramp = (margin_mm + feather_mm - d) / feather_mm if feather_mm > 0 else (d <= margin_mm).astype(float)
            gate[i] = np.clip(ramp, 0.0, 1.0)
    return gate


def dose_slices(case: Case, vol: ScanVolumes, z: Sequence[int] | np.ndarray, crop: int = CROP) -> np.ndarray:
    """The planned RT dose on the crops of slices ``z`` (len(z), 1, crop, crop) float32, in units of
    ``DOSE_SCALE_GY`` (60 Gy); zeros for a case without a dose map (the network's "no dose" condition)."""
    dose = case.dose()
    if dose is None:
        return np.zeros((len(z), 1, crop, crop), np.float32)
    d = crop_slices(dose.astype(np.float32) / np.float32(DOSE_SCALE_GY), z, vol.spacing[1:], vol.center_yx_mm, crop)
    return d[:, None].astype(np.float32)


def pooled(x: np.ndarray, size: int) -> np.ndarray:
    """Mean-pool (n, c, H, W) to (n, c, size, size) (H, W multiples of ``size``): a dose crop at latent resolution."""
    n, c, h, w = x.shape
    return x.reshape(n, c, size, h // size, size, w // size).mean(axis=(3, 5)).astype(np.float32)
