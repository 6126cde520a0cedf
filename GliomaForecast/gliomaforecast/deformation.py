"""Tumor-evolution displacement field between two GTVs, warping, and extrapolation to a target day.

Method (Multi-task diffusion paper, section 4.2): a U-Net G(phi_1, phi_2, dl) predicts a dense displacement
field v with phi_2 ~= phi_1 o v, where phi are the pre-logistic signed distances (mm, negative inside) of
the two GTVs and dl = t_2 - t_1 (days). The network is 2D, as in the paper: it runs on every axial slice
where either GTV is present (``tumor_slices``), each resampled in-plane to the model's pixel spacing
(``pixel_spacing_mm`` in models.json, 2 mm) and edge-padded to a multiple of 16. Elsewhere the field is 0.

Conventions of the in-memory field ``displacement`` (z, y, x, 3), float32, mm:
* components are in array/index order (d_z, d_y, d_x), along the grid's index axes, in mm; d_z = 0
  (the field is per axial slice);
* it is a backward (pull) map: the warped image is ``(phi o v)(p) = phi(p + v(p))`` (ITK's displacement
  field transform convention with the time-2 grid as fixed space).
The file ``displacement.nii.gz`` written by :func:`write_displacement` holds physical LPS vectors
(x, y, z components, mm) as ITK/Slicer displacement-field transforms expect: ``D @ (d_x, d_y, d_z)`` with
the grid's direction matrix D.

Extrapolation to a target day scales the displacement linearly with the time gap (the field is a
displacement, not a stationary velocity field). Runtime: numpy, scipy and onnxruntime only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .checks import check_spacing
from .errors import InputError
from .geometry import Grid
from .io.images import write_image
from .models import OnnxModel, load_model

if TYPE_CHECKING:
    from .io.case import Case

MODEL_ID = "evolution"
BATCH = 16


def _spacing(spacing: Sequence[float], ndim: int) -> np.ndarray:
    return np.asarray(check_spacing(spacing, ndim), dtype=float)


def resample_plane(
    stack: np.ndarray,
    spacing_yx: Sequence[float] | np.ndarray,
    target_mm: float,
    shape_yx: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Linearly resample a stack of 2D planes (n, y, x) from ``spacing_yx`` (mm) to ``target_mm`` pixels.

    Pixel 0 stays at the same position; the output covers the input extent (``floor(extent/target)+1``
    pixels per axis) unless ``shape_yx`` is given. Points outside take the nearest edge value."""
    stack = np.asarray(stack, dtype=np.float32)
    sp = np.asarray(spacing_yx, dtype=float)
    if shape_yx is None:
        shape_yx = tuple(int(np.floor((n - 1) * s / target_mm + 1e-6)) + 1 for n, s in zip(stack.shape[1:], sp))
    coords = np.meshgrid(
        np.arange(shape_yx[0]) * target_mm / sp[0], np.arange(shape_yx[1]) * target_mm / sp[1], indexing="ij"
    )
    out = np.empty((stack.shape[0], *shape_yx), dtype=np.float32)
    for i, plane in enumerate(stack):
        out[i] = ndimage.map_coordinates(plane, coords, order=1, mode="nearest")
    return out


def _restore_plane(
    stack: np.ndarray, target_mm: float, spacing_yx: Sequence[float] | np.ndarray, shape_yx: tuple[int, ...]
) -> np.ndarray:
    """Inverse of :func:`resample_plane`: planes at ``target_mm`` pixels back onto ``shape_yx`` at ``spacing_yx``."""
    sp = np.asarray(spacing_yx, dtype=float)
    coords = np.meshgrid(
        np.arange(shape_yx[0]) * sp[0] / target_mm, np.arange(shape_yx[1]) * sp[1] / target_mm, indexing="ij"
    )
    out = np.empty((stack.shape[0], *shape_yx), dtype=np.float32)
    for i, plane in enumerate(stack):
        out[i] = ndimage.map_coordinates(plane, coords, order=1, mode="nearest")
    return out


def tumor_slices(phi1: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Indices of the axial slices (axis 0) where either GTV (phi <= 0) is present."""
    return np.nonzero(np.any((phi1 <= 0) | (phi2 <= 0), axis=(1, 2)))[0]


def predict_slices(phi1: np.ndarray, phi2: np.ndarray, gap_days: float, model: OnnxModel) -> np.ndarray:
    """Run the evolution network on 2D planes (n, h, w) given at the model's pixel spacing.

    Returns the in-plane displacement (n, h, w, 2) in mm, components (d_y, d_x)."""
    multiple = int(model.spec.extra.get("size_multiple", 16))
    n, h, w = phi1.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    x = np.stack([np.pad(phi1, pad, mode="edge"), np.pad(phi2, pad, mode="edge")], axis=1).astype(np.float32)
    out = np.empty((n, 2, h, w), dtype=np.float32)
    for start in range(0, n, BATCH):
        chunk = x[start : start + BATCH]
        gap = np.full((chunk.shape[0],), gap_days, dtype=np.float32)
        field = model.run({"phi": chunk, "gap_days": gap})["displacement"]
        out[start : start + BATCH] = field[:, :, pad[1][0] : pad[1][0] + h, pad[2][0] : pad[2][0] + w]
    return np.moveaxis(out, 1, -1)


def evolution_field(
    phi1: np.ndarray, phi2: np.ndarray, gap_days: float, spacing: Sequence[float], model: OnnxModel | None = None
) -> np.ndarray:
    """Displacement field (z, y, x, 3), mm, with phi2 ~= warp(phi1, field) for two 3D signed distances (mm).

    ``gap_days`` = t_2 - t_1 > 0. Axial slices without tumor in either map get a zero field. ``model``
    defaults to the registered ``evolution`` model."""
    phi1 = np.asarray(phi1, dtype=np.float32)
    phi2 = np.asarray(phi2, dtype=np.float32)
    if phi1.ndim != 3 or phi1.shape != phi2.shape:
        raise ValueError(f"phi1 and phi2 must be 3D arrays of one shape, got {phi1.shape} and {phi2.shape}")
    if not (np.isfinite(gap_days) and gap_days > 0):
        raise ValueError(f"gap_days must be a positive number of days, got {gap_days}")
    sp = _spacing(spacing, 3)
    model = model if model is not None else load_model(MODEL_ID)
    target = float(model.spec.extra.get("pixel_spacing_mm", 2.0))
    field = np.zeros(phi1.shape + (3,), dtype=np.float32)
    idx = tumor_slices(phi1, phi2)
    if idx.size == 0:
        return field
    a = resample_plane(phi1[idx], sp[1:], target)
    b = resample_plane(phi2[idx], sp[1:], target)
    plane = predict_slices(a, b, float(gap_days), model)
    for c in range(2):
        field[idx, :, :, 1 + c] = _restore_plane(plane[..., c], target, sp[1:], phi1.shape[1:])
    return field


def warp(phi: np.ndarray, displacement: np.ndarray, spacing: Sequence[float], order: int = 1) -> np.ndarray:
    """``phi o v``: ``phi`` (2D or 3D) sampled at ``p + v(p)``; ``displacement`` (..., ndim) in mm, index
    order. Linear interpolation by default; outside points take the nearest edge value."""
    phi = np.asarray(phi, dtype=np.float32)
    disp = np.asarray(displacement, dtype=np.float32)
    if disp.shape != phi.shape + (phi.ndim,):
        raise ValueError(f"displacement must have shape {phi.shape + (phi.ndim,)}, got {disp.shape}")
    sp = _spacing(spacing, phi.ndim)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in phi.shape], indexing="ij")
    coords = [g + disp[..., i] / np.float32(sp[i]) for i, g in enumerate(grid)]
    return ndimage.map_coordinates(phi, coords, order=order, mode="nearest").astype(np.float32)


def extrapolate(displacement: np.ndarray, gap_days: float, target_gap_days: float) -> np.ndarray:
    """Scale a displacement observed over ``gap_days`` to ``target_gap_days`` (linear in time)."""
    if not (np.isfinite(gap_days) and gap_days > 0):
        raise ValueError(f"gap_days must be a positive number of days, got {gap_days}")
    if not (np.isfinite(target_gap_days) and target_gap_days >= 0):
        raise ValueError(f"target_gap_days must be a non-negative number of days, got {target_gap_days}")
    return (np.asarray(displacement, dtype=np.float32) * np.float32(target_gap_days / gap_days)).astype(np.float32)


def jacobian_determinant(displacement: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Determinant of the Jacobian of ``p -> p + v(p)`` (central differences in mm); <= 0 means folding."""
    disp = np.asarray(displacement, dtype=np.float64)
    d = disp.ndim - 1
    if disp.shape[-1] != d:
        raise ValueError(f"displacement must have {d} components, got {disp.shape[-1]}")
    sp = _spacing(spacing, d)
    jac = np.zeros(disp.shape[:-1] + (d, d))
    for i in range(d):
        for j in range(d):
            if disp.shape[j] > 1:
                jac[..., i, j] = np.gradient(disp[..., i], sp[j], axis=j)
        jac[..., i, i] += 1.0
    return np.linalg.det(jac).astype(np.float32)


def to_physical(displacement: np.ndarray, grid: Grid) -> np.ndarray:
    """Index-frame displacement (z, y, x, 3: d_z, d_y, d_x mm) -> physical LPS vectors (x, y, z components)."""
    disp = np.asarray(displacement, dtype=np.float64)
    return (disp[..., ::-1] @ grid.direction_matrix.T).astype(np.float32)


def from_physical(vectors: np.ndarray, grid: Grid) -> np.ndarray:
    """Inverse of :func:`to_physical`: LPS vectors (x, y, z) -> index-frame (d_z, d_y, d_x) in mm."""
    vec = np.asarray(vectors, dtype=np.float64)
    return (vec @ np.linalg.inv(grid.direction_matrix).T)[..., ::-1].astype(np.float32)


def write_displacement(
    path: str | Path, displacement: np.ndarray, grid: Grid, *, inputs: Iterable[str | Path] = ()
) -> Path:
    """Write the field as a 3-component vector image (physical LPS x, y, z in mm) with ``grid``'s geometry."""
    if grid.ndim != 3 or np.shape(displacement) != grid.shape + (3,):
        raise ValueError(f"displacement must have shape {grid.shape + (3,)}, got {np.shape(displacement)}")
    return write_image(path, to_physical(displacement, grid), grid, inputs=inputs)


def case_evolution_field(
    case: Case, first: int = -2, second: int = -1, model: OnnxModel | None = None
) -> tuple[np.ndarray, float]:
    """The field between the GTVs of timepoints ``first`` and ``second`` of a loaded case (``model`` defaults to
    the registered ``evolution`` model).

    Returns (displacement (z, y, x, 3) mm on ``case.grid``, gap in days). The field is computed once per case
    object, model file and execution provider (``Case.derived``) and returned read-only."""
    tp1, tp2 = case.timepoints[first], case.timepoints[second]
    gap = float(tp2.day - tp1.day)
    if gap <= 0:
        raise InputError(case.path, "timepoints", f"timepoint {tp2.index} is not after timepoint {tp1.index}")
    model = model if model is not None else load_model(MODEL_ID)
    key = ("evolution_field", tp1.index, tp2.index, model.spec.sha256, model.provider)
    field = case.derived(
        key, lambda: evolution_field(case.gtv_distance(tp1), case.gtv_distance(tp2), gap, case.grid.spacing, model)
    )
    return field, gap
