"""Signed distance fields (mm) and logistic tumor-presence probability maps.

Multi-task diffusion paper, eq. 4-5: phi is the signed distance to the tumor in mm (negative inside)
and P = 1 / (1 + exp(beta * (phi - mu))) with beta = 0.1 /mm and mu = 15 mm, so that P = 0.5 at 15 mm, the
clinical CTV margin. The tumor of a map is the region phi <= 0, i.e. P >= P(phi = 0) = 1 / (1 + exp(-beta mu))
(:data:`TUMOR_THRESHOLD`, 0.8176 for the defaults): a fixed "P > 0.8" would depend on the voxel size (at 1 mm the
voxel just outside a GTV has P = 0.802).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from . import defaults
from .checks import check_mask, check_spacing

DEFAULT_BETA = defaults.BETA_PER_MM  # 1/mm
DEFAULT_MU = defaults.MU_MM  # mm


def _check_mask(mask: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    mask = check_mask(mask)
    spacing = check_spacing(spacing, mask.ndim)
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise ValueError("mask is empty: the signed distance is undefined")
    if n == mask.size:
        raise ValueError("mask fills the whole grid: the signed distance is undefined")
    return mask, spacing


def _distance_to_set(target: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Exact Euclidean distance (mm) from every voxel centre to the nearest True voxel centre
    (0 on the set), by SimpleITK's multi-threaded Maurer transform."""
    image = sitk.GetImageFromArray(target.astype(np.uint8))
    image.SetSpacing(spacing[::-1])
    dist = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True, backgroundValue=0
    )
    out = sitk.GetArrayFromImage(dist)
    return np.maximum(out, 0.0, out=out)


def _grown_bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of the True voxels grown by one voxel on each side, clipped to the grid."""
    box = []
    for axis, n in enumerate(mask.shape):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, n)))
    return tuple(box)


def signed_distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Signed Euclidean distance in mm (float32), 2D or 3D, any (anisotropic) ``spacing`` in array order.

    Outside the tumor: the distance from the voxel centre to the nearest tumor voxel centre.
    Inside: minus the distance to the nearest non-tumor voxel centre. An empty or full mask raises
    ``ValueError``.

    Both parts are exact EDTs (SimpleITK's Maurer transform): the outside one over the whole grid; the
    inside one only needs
    the tumor's bounding box grown by one voxel (within the grid), because clamping any background voxel
    to that box gives a background voxel at least as close. Voxels beyond the grid edge do not count.
    """
    mask, spacing = _check_mask(mask, spacing)
    phi = _distance_to_set(mask, spacing)
    box = _grown_bounding_box(mask)
    sub = mask[box]
    inside = _distance_to_set(~sub, spacing)
    region = phi[box]
    region[sub] = -inside[sub]
    return phi.astype(np.float32, copy=False)


def tumor_probability(
    mask: np.ndarray, spacing: Sequence[float], beta: float = DEFAULT_BETA, mu: float = DEFAULT_MU
) -> np.ndarray:
    """Tumor-presence probability P = 1 / (1 + exp(beta * (phi - mu))) in [0, 1] (float32), with phi the
    signed distance (mm) of :func:`signed_distance`, ``beta`` in 1/mm and ``mu`` in mm."""
    return probability_from_signed_distance(signed_distance(mask, spacing), beta, mu)


def probability_from_signed_distance(phi: np.ndarray, beta: float = DEFAULT_BETA, mu: float = DEFAULT_MU) -> np.ndarray:
    """The logistic map of a signed distance ``phi`` (mm) to a probability in [0, 1] (float32)."""
    _check_params(beta, mu)
    z = np.asarray(phi, dtype=np.float64) - mu
    return (0.5 - 0.5 * np.tanh(0.5 * beta * z)).astype(np.float32)


def tumor_threshold(beta: float = DEFAULT_BETA, mu: float = DEFAULT_MU) -> float:
    """The probability at the tumor boundary, P(phi = 0) = 1 / (1 + exp(-beta mu)), as the maps compute it (float32)."""
    return float(probability_from_signed_distance(np.zeros(()), beta, mu))


def tumor_region(p: np.ndarray, beta: float = DEFAULT_BETA, mu: float = DEFAULT_MU) -> np.ndarray:
    """The tumor of a probability map (bool): phi <= 0, i.e. P >= :func:`tumor_threshold`, on any voxel size."""
    return np.asarray(p) >= np.float32(tumor_threshold(beta, mu))


def signed_distance_from_probability(p: np.ndarray, beta: float = DEFAULT_BETA, mu: float = DEFAULT_MU) -> np.ndarray:
    """Inverse of the logistic map: phi = mu + log((1 - P) / P) / beta (mm, float32).

    P is clipped to [1e-7, 1 - 1e-7] so that 0 and 1 map to large finite distances.
    """
    _check_params(beta, mu)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    return (mu + (np.log1p(-p) - np.log(p)) / beta).astype(np.float32)


def _check_params(beta: float, mu: float) -> None:
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive slope in 1/mm, got {beta}")
    if not np.isfinite(mu):
        raise ValueError(f"mu must be a finite distance in mm, got {mu}")


TUMOR_THRESHOLD = tumor_threshold()  # P(phi = 0) for the default beta and mu: 0.8176
