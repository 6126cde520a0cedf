"""Inputs of the multi-task diffusion network, built from a case by the core (numpy only).

The training package builds its examples with these same functions, so the forecaster and the trainer cannot
disagree on channel order, units or crops.

Condition channels (``COND_CHANNELS``, in this order), per axial slice at ``PIXEL_MM`` (2 mm) pixels, in a
``CROP`` x ``CROP`` crop centred (in y, x) on the centre of mass of the union of the two prior GTVs:

==  ==================  =======================================================================
 0  ``flair_1``         FLAIR of prior scan 1 / its intensity scale (99th percentile in the brain)
 1  ``t1ce_1``          T1CE of prior scan 1 / its intensity scale
 2  ``phi_1``           signed distance of GTV 1 (mm, negative inside; 3D on the case grid)
 3  ``flair_2``         FLAIR of prior scan 2 (the last one) / its intensity scale
 4  ``t1ce_2``          T1CE of prior scan 2 / its intensity scale
 5  ``phi_2``           signed distance of GTV 2 (mm)
 6  ``dose``            RT dose (Gy; 0 without a dose map)
 7  ``disp_y``          evolution displacement GTV 1 -> GTV 2, d_y (mm; ``deformation.case_evolution_field``)
 8  ``disp_x``          the same, d_x (mm)
 9  ``brain``           brain mask (1 inside; all ones without a mask)
==  ==================  =======================================================================

The network normalises mm and Gy itself (fixed scales in the ONNX graph). Conditioning scalars ``gaps``
(days): ``[t2 - t1, t_target - t2, t2 - t_rt]`` (the last is 0 without RT or before RT start).
The generative target is the FLAIR change ``RESIDUAL_GAIN * (FLAIR_target - FLAIR_2) / scale_2`` average-pooled
to ``GEN_PIXEL_MM`` (4 mm) pixels: the sampled FLAIR is ``FLAIR_2 + scale_2 * x0 / RESIDUAL_GAIN`` (x0 interpolated
onto the case grid) in the input scan's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..errors import InputError

if TYPE_CHECKING:
    from ..io.case import Case

PIXEL_MM = 2.0
CROP = 64
COND_NAMES = ("flair_1", "t1ce_1", "phi_1", "flair_2", "t1ce_2", "phi_2", "dose", "disp_y", "disp_x", "brain")
COND_CHANNELS = len(COND_NAMES)
PHI2_CHANNEL = COND_NAMES.index("phi_2")
RESIDUAL_GAIN = 2.0
GEN_POOL = 2
GEN_PIXEL_MM = PIXEL_MM * GEN_POOL
INTENSITY_PERCENTILE = 99.0
MODALITIES = ("flair", "t1ce")


def intensity_scale(image: np.ndarray, brain: np.ndarray | None) -> float:
    """The image's 99th percentile inside the brain (over positive voxels without a mask); 1 when that is <= 0."""
    values = image[brain] if brain is not None else image[image > 0]
    scale = float(np.percentile(values, INTENSITY_PERCENTILE)) if values.size else 0.0
    return scale if scale > 0 else 1.0


def check_modalities(case: Case, first: int = -2, second: int = -1) -> None:
    """InputError naming the manifest field when a prior scan lacks FLAIR or T1CE (never a silent zero channel)."""
    for k in (first, second):
        tp = case.timepoints[k]
        for m in MODALITIES:
            if m not in tp.images:
                raise InputError(
                    case.path,
                    f"timepoints[{tp.index}].images.{m}",
                    f"multitask-diffusion needs {m.upper()} at the last two scans; "
                    "use --forecaster evolution-field for cases without it",
                )


@dataclass
class CaseVolumes:
    """The 3D condition volumes of one prior pair on the case grid, before slicing.

    ``cond`` (C, z, y, x) float32 in the units of the module docstring; ``scale_2`` the last FLAIR's
    intensity scale; ``center_yx_mm`` the crop centre (mm from voxel 0, y and x)."""

    cond: np.ndarray
    scale_2: float
    center_yx_mm: tuple[float, float]
    spacing: tuple[float, ...]


def case_volumes(
    case: Case, displacement: np.ndarray, first: int = -2, second: int = -1, phis: Sequence[np.ndarray] | None = None
) -> CaseVolumes:
    """Condition volumes for priors ``first`` and ``second`` of a loaded case; ``displacement`` (z, y, x, 3) mm is
    the evolution field between their GTVs; ``phis`` their signed distances (mm) when already computed."""
    check_modalities(case, first, second)
    spacing = tuple(float(s) for s in case.grid.spacing)
    brain = case.brain_mask()
    tps = (case.timepoints[first], case.timepoints[second])
    if phis is None:
        phis = [case.gtv_distance(tp) for tp in tps]
    channels: list[np.ndarray] = []
    scale_2 = 1.0
    for tp, phi in zip(tps, phis):
        for m in MODALITIES:
            image = case.image(tp, m)
            scale = intensity_scale(image, brain)
            if tp is tps[1] and m == "flair":
                scale_2 = scale
            channels.append(image / np.float32(scale))
        channels.append(np.asarray(phi, np.float32))
    dose = case.dose()
    channels.append(np.zeros(case.grid.shape, np.float32) if dose is None else dose.astype(np.float32))
    channels += [displacement[..., 1], displacement[..., 2]]
    channels.append(np.ones(case.grid.shape, np.float32) if brain is None else brain.astype(np.float32))
    union = (phis[0] <= 0) | (phis[1] <= 0)
    com = np.array(ndimage.center_of_mass(union))[1:] * np.asarray(spacing[1:])
    return CaseVolumes(np.stack(channels).astype(np.float32), scale_2, (float(com[0]), float(com[1])), spacing)


def gaps(day_1: float, day_2: float, target_day: float, rt_start_day: float | None) -> np.ndarray:
    """Conditioning scalars (days): [t2 - t1, t_target - t2, t2 - t_rt (0 without RT or before it)]."""
    since_rt = 0.0 if rt_start_day is None else max(0.0, day_2 - rt_start_day)
    return np.array([day_2 - day_1, target_day - day_2, since_rt], np.float32)


def crop_box(
    shape_yx: Sequence[int], spacing_yx: Sequence[float], center_yx_mm: Sequence[float], crop: int = CROP
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling coordinates (in case voxels, y and x; each (crop,)) of a crop of ``crop`` pixels at ``PIXEL_MM``
    centred on ``center_yx_mm``."""
    offsets = (np.arange(crop) - (crop - 1) / 2.0) * PIXEL_MM
    return tuple((c + offsets) / s for c, s in zip(center_yx_mm, spacing_yx))  # type: ignore[return-value]


def crop_slices(
    volume: np.ndarray,
    z: Sequence[int] | np.ndarray,
    spacing_yx: Sequence[float],
    center_yx_mm: Sequence[float],
    crop: int = CROP,
    order: int = 1,
) -> np.ndarray:
    """Crops (len(z), crop, crop) at 2 mm pixels of axial slices ``z`` of a 3D volume (linear; edge values outside)."""
    cy, cx = crop_box(volume.shape[1:], spacing_yx, center_yx_mm, crop)
    yy, xx = np.meshgrid(cy, cx, indexing="ij")
    out = np.empty((len(z), crop, crop), np.float32)
    for i, k in enumerate(z):
        out[i] = ndimage.map_coordinates(volume[k], [yy, xx], order=order, mode="nearest")
    return out


def cond_slices(volumes: CaseVolumes, z: Sequence[int] | np.ndarray, crop: int = CROP) -> np.ndarray:
    """Condition crops (len(z), C, crop, crop) of slices ``z``."""
    sp = volumes.spacing[1:]
    return np.stack([crop_slices(ch, z, sp, volumes.center_yx_mm, crop) for ch in volumes.cond], axis=1)


def paste_slices(
    base: np.ndarray,
    crops: np.ndarray,
    z: Sequence[int] | np.ndarray,
    spacing_yx: Sequence[float],
    center_yx_mm: Sequence[float],
    pixel_mm: float = PIXEL_MM,
) -> np.ndarray:
    """Put crops (len(z), n, n) of ``pixel_mm`` pixels (centred like :func:`crop_box`) back onto ``base`` (z, y, x,
    case grid): each case voxel inside a crop's extent takes the crop's linear interpolation there; voxels
    outside keep ``base``. Returns a copy."""
    out = np.array(base, dtype=np.float32, copy=True)
    crop = crops.shape[-1]
    half = (crop - 1) / 2.0
    ny, nx = base.shape[1:]
    py = (np.arange(ny) * spacing_yx[0] - center_yx_mm[0]) / pixel_mm + half
    px = (np.arange(nx) * spacing_yx[1] - center_yx_mm[1]) / pixel_mm + half
    yy, xx = np.meshgrid(py, px, indexing="ij")
    inside = (yy >= 0) & (yy <= crop - 1) & (xx >= 0) & (xx <= crop - 1)
    for i, k in enumerate(z):
        values = ndimage.map_coordinates(crops[i], [yy[inside], xx[inside]], order=1, mode="nearest")
        out[k][inside] = values
    return out


def forecast_slices(
    phi_last: np.ndarray, phi_first: np.ndarray, spacing_z: float, reach_mm: float = 20.0
) -> np.ndarray:
    """Axial slices the network runs on: every slice within ``reach_mm`` (mm, along z) of a slice holding either
    prior GTV, so that a tumour growing into new slices is covered."""
    has = np.nonzero(np.any((phi_last <= 0) | (phi_first <= 0), axis=(1, 2)))[0]
    if has.size == 0:
        return has
    reach = int(np.ceil(reach_mm / spacing_z))
    lo, hi = max(0, has.min() - reach), min(phi_last.shape[0] - 1, has.max() + reach)
    return np.arange(lo, hi + 1)
