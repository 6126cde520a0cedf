"""Tumour-cell infiltration beyond the visible tumour from ONE scan: the tail of the Fisher-KPP travelling wave
along the anatomy (Unkelbach et al., "Radiotherapy planning for glioblastoma based on a tumor growth model:
improving target volume delineation", Phys Med Biol 2014;59:747).

Ahead of a Fisher-KPP front the density falls as u = u_c exp(-s / lambda), with u_c the density at the visible
edge (the FLAIR threshold), lambda = sqrt(D / rho) (mm) and s the distance from the edge along the front's path.
Where D varies (white matter D_w, grey matter 0.1 D_w, none in CSF), the local decay length is lambda sqrt(f) with
f = D / D_w, so s is the travel time T of a front of local speed sqrt(f) from the visible tumour: an Eikonal
equation |grad T| sqrt(f) = 1, solved by second-order fast marching (scikit-fmm) on the grid's own spacing (mm).
T is a white-matter-equivalent distance (mm): equal to the Euclidean distance in homogeneous white matter,
3.16 times longer per mm of grey matter, infinite behind CSF it cannot go around.

Ranking voxels by u (a target volume of a given size) does not depend on lambda or u_c, only on T.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import skfmm

from ...checks import check_mask, check_spacing

MIN_SPEED = 1e-3
"""Speed (sqrt f) below which a voxel is an obstacle (f = 0: CSF, cavity, outside the brain)."""


def tissue_travel_distance(seed: np.ndarray, relative_diffusivity: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """White-matter-equivalent distance T (mm, float64) from ``seed`` (bool: the visible tumour): the travel time
    of a front of local speed sqrt(f), ``relative_diffusivity`` f = D / D_w (0-1), by second-order fast marching on
    ``spacing`` (mm, array order), from the seed's edge (half-way between its outermost voxel centres and the first
    ones outside). 0 inside the seed; inf where f = 0 (outside the seed) and where no path leads."""
    seed = check_mask(seed, "seed")
    f = np.asarray(relative_diffusivity, dtype=np.float64)
    if f.shape != seed.shape:
        raise ValueError(f"relative diffusivity {f.shape} and seed {seed.shape} differ in shape")
    if not np.all(np.isfinite(f)) or f.min() < 0:
        raise ValueError("relative diffusivity must be finite and >= 0")
    spacing = check_spacing(spacing, seed.ndim)
    if not seed.any():
        raise ValueError("the seed (visible tumour) is empty")
    speed = np.sqrt(np.clip(f, 0.0, 1.0))
    blocked = (speed < MIN_SPEED) & ~seed
    speed = np.where(seed, 1.0, np.maximum(speed, MIN_SPEED))  # inside the seed the speed does not matter
    phi = np.ma.MaskedArray(np.where(seed, -0.5, 0.5), mask=blocked)
    travel = skfmm.travel_time(phi, speed, dx=list(spacing), order=2)
    out = np.ma.filled(np.ma.MaskedArray(travel, mask=np.ma.getmaskarray(travel) | blocked), np.inf).astype(np.float64)
    out[seed] = 0.0
    return out


def tail_density(travel_mm: np.ndarray, length_mm: float, u_edge: float) -> np.ndarray:
    """Density (fraction of capacity, float32) u = u_edge exp(-T / length) outside the visible tumour (T > 0) and 1
    inside it (T = 0); 0 where T is infinite. ``length_mm``: lambda = sqrt(D_w / rho), mm."""
    if not (np.isfinite(length_mm) and length_mm > 0):
        raise ValueError(f"length must be a positive number of mm, got {length_mm}")
    if not 0 < u_edge <= 1:
        raise ValueError(f"edge density must be in (0, 1], got {u_edge}")
    t = np.asarray(travel_mm, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        u = np.where(t > 0, u_edge * np.exp(-t / length_mm), 1.0)
    return np.where(np.isfinite(t), u, 0.0).astype(np.float32)
