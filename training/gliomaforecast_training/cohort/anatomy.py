"""Brain anatomy for the virtual cohort: the MNI152 templates shipped with nilearn, cropped to the brain,
and a random smooth per-patient deformation with intensity changes.

Arrays are (z, y, x) float32 on a :class:`gliomaforecast.geometry.Grid` in LPS mm (ITK convention).
Tissue maps are probabilities in [0, 1]; CSF is the brain mask minus grey and white matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from gliomaforecast.geometry import Grid, to_sitk

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Anatomy:
    """One brain: ``t1`` template intensity (about 0..1), tissue probabilities ``wm``, ``gm``, ``csf``
    (float32 in [0, 1], summing to at most 1) and the boolean ``brain`` mask, all on ``grid``."""

    t1: np.ndarray
    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    grid: Grid


def _nib_to_zyx(img) -> tuple[np.ndarray, Grid]:
    """A nibabel 3D image as a (z, y, x) float32 array and its LPS Grid."""
    data = np.asarray(img.get_fdata(dtype=np.float32)).transpose(2, 1, 0)
    affine = np.asarray(img.affine, dtype=float)
    lin = _RAS_TO_LPS @ affine[:3, :3]
    spacing_xyz = np.linalg.norm(lin, axis=0)
    direction = lin / spacing_xyz[None, :]
    origin = _RAS_TO_LPS @ affine[:3, 3]
    return np.ascontiguousarray(data), Grid(data.shape, tuple(spacing_xyz[::-1]), tuple(origin), direction)


@lru_cache(maxsize=4)
def load_template(spacing: float = 2.0, margin_mm: float = 12.0) -> Anatomy:
    """The MNI152 (ICBM 2009a symmetric, as shipped with nilearn) T1, GM, WM and brain mask, cropped to
    the brain's bounding box plus ``margin_mm``, at ``spacing`` mm (isotropic). Integer spacings are
    block averages of the 1 mm templates (2 mm: voxel centres 0.5 mm off nilearn's own 2 mm grid);
    other spacings are resampled linearly. Loads offline (the files ship inside nilearn)."""
    from nilearn import datasets  # heavy import, only here

    if not (np.isfinite(spacing) and spacing >= 1.0):
        raise ValueError(f"spacing must be at least 1 mm, got {spacing}")
    imgs = [datasets.load_mni152_template(resolution=1), datasets.load_mni152_gm_template(resolution=1),
            datasets.load_mni152_wm_template(resolution=1), datasets.load_mni152_brain_mask(resolution=1)]
    arrays = []
    for img in imgs:
        arr, grid = _nib_to_zyx(img)
        arrays.append(arr)
    factor = int(round(spacing))
    lo, hi = _bbox(arrays[3] > 0.5, margin_mm, grid.spacing)
    if abs(spacing - factor) < 1e-6:
        hi = [a + (b - a) // factor * factor for a, b in zip(lo, hi)]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    arrays = [a[sl] for a in arrays]
    origin = grid.index_to_physical(np.asarray(lo, dtype=float) + (factor - 1) / 2.0)
    if abs(spacing - factor) < 1e-6:
        arrays = [_block_mean(a, factor) for a in arrays]
        grid = Grid(arrays[0].shape, (float(factor),) * 3, tuple(origin), grid.direction)
    else:
        cropped = Grid(arrays[0].shape, grid.spacing, tuple(grid.index_to_physical(np.asarray(lo, float))),
                       grid.direction)
        shape = tuple(int(n // spacing) for n in cropped.shape)
        grid = Grid(shape, (spacing,) * 3, cropped.origin, grid.direction)
        arrays = [_resample(a, cropped, grid, sitk.sitkLinear) for a in arrays]
    t1, gm, wm, mask = arrays
    return _finish(t1 / max(float(t1.max()), 1e-6), gm, wm, mask, grid)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return np.ascontiguousarray(a, dtype=np.float32)
    z, y, x = (n // f for n in a.shape)
    return a[: z * f, : y * f, : x * f].reshape(z, f, y, f, x, f).mean(axis=(1, 3, 5)).astype(np.float32)


def _bbox(mask: np.ndarray, margin_mm: float, spacing) -> tuple[list[int], list[int]]:
    idx = np.nonzero(mask)
    pad = [int(np.ceil(margin_mm / s)) for s in spacing]
    lo = [max(int(i.min()) - p, 0) for i, p in zip(idx, pad)]
    hi = [min(int(i.max()) + 1 + p, n) for i, p, n in zip(idx, pad, mask.shape)]
    return lo, hi


def _finish(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, brain_soft: np.ndarray, grid: Grid) -> Anatomy:
    """Normalise tissue maps: brain = soft mask > 0.5; wm, gm clipped to the brain and to a sum <= 1;
    csf = the rest of the brain."""
    brain = brain_soft > 0.5
    wm = np.clip(wm, 0, 1) * brain
    gm = np.clip(gm, 0, 1) * brain
    total = wm + gm
    scale = np.where(total > 1, 1 / np.maximum(total, 1e-6), 1).astype(np.float32)
    wm, gm = (wm * scale).astype(np.float32), (gm * scale).astype(np.float32)
    csf = (np.clip(1 - wm - gm, 0, 1) * brain).astype(np.float32)
    return Anatomy(np.clip(t1, 0, None).astype(np.float32), wm, gm, csf, brain, grid)


def _resample(array: np.ndarray, grid: Grid, ref: Grid, interp) -> np.ndarray:
    src = to_sitk(np.asarray(array, dtype=np.float32), grid)
    dst = to_sitk(np.zeros(ref.shape, dtype=np.uint8), ref)
    out = sitk.Resample(src, dst, sitk.Transform(), interp, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def random_displacement(grid: Grid, rng: np.random.Generator, *, amplitude_mm: float = 4.0,
                        scale_sd: float = 0.04, control_spacing_mm: float = 40.0) -> np.ndarray:
    """A smooth random backward mapping as sampling coordinates (3, z, y, x) in voxel units: per-axis
    scaling about the grid centre (sd ``scale_sd``) plus a displacement of sd ``amplitude_mm`` (mm)
    drawn on control points every ``control_spacing_mm`` and interpolated with cubic splines."""
    shape = np.asarray(grid.shape)
    coarse = [max(2, int(round(n * s / control_spacing_mm)) + 1) for n, s in zip(shape, grid.spacing)]
    coords = np.indices(grid.shape, dtype=np.float32)
    centre = (shape - 1) / 2.0
    for axis in range(3):
        field = rng.normal(0.0, amplitude_mm, coarse)
        disp = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=3, mode="nearest",
                            grid_mode=True)[: shape[0], : shape[1], : shape[2]]
        scale = 1.0 + rng.normal(0.0, scale_sd)
        coords[axis] = centre[axis] + (coords[axis] - centre[axis]) / scale + disp / grid.spacing[axis]
    return coords


def deform(anatomy: Anatomy, rng: np.random.Generator, *, amplitude_mm: float = 4.0,
           scale_sd: float = 0.04, contrast_sd: float = 0.05) -> Anatomy:
    """A new patient's anatomy: ``anatomy`` warped by :func:`random_displacement` (linear interpolation,
    same grid) with the T1 intensity changed by a random gamma and gain (sd ``contrast_sd``)."""
    coords = random_displacement(anatomy.grid, rng, amplitude_mm=amplitude_mm, scale_sd=scale_sd)
    t1, gm, wm, brain = (ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0)
                         for a in (anatomy.t1, anatomy.gm, anatomy.wm, anatomy.brain.astype(np.float32)))
    gamma = float(np.exp(rng.normal(0.0, contrast_sd)))
    gain = float(1.0 + rng.normal(0.0, contrast_sd))
    t1 = gain * np.clip(t1, 0, None) ** gamma
    return _finish(t1.astype(np.float32), gm, wm, brain, anatomy.grid)
