"""Treatment of a virtual patient: resection of the enhancing core, the standard-margin CTV, a 60 Gy /
30 fraction dose map with a Gaussian penumbra, and linear-quadratic cell survival per fraction.

Distances in mm from ``spacing`` (array order z, y, x); dose in Gy; time in days.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def margin_ctv(gtv: np.ndarray, spacing, margin_mm: float = 15.0, brain_mask: np.ndarray | None = None) -> np.ndarray:
    """Every voxel within ``margin_mm`` (Euclidean, mm) of the GTV, kept inside ``brain_mask``; the GTV
    is always included. (Same definition as ``gliomaforecast.ctv.standard_ctv`` without a barrier.)"""
    gtv = np.asarray(gtv, dtype=bool)
    if not gtv.any():
        raise ValueError("the GTV is empty")
    ctv = ndimage.distance_transform_edt(~gtv, sampling=spacing) <= margin_mm
    if brain_mask is not None:
        ctv &= np.asarray(brain_mask, dtype=bool)
    return ctv | gtv


def dose_map(ctv: np.ndarray, spacing, prescription_gy: float = 60.0, ptv_margin_mm: float = 5.0,
             penumbra_sigma_mm: float = 3.0, edge_level: float = 0.95) -> np.ndarray:
    """A conformal dose distribution (Gy, float32): the PTV (CTV + ``ptv_margin_mm``) blurred by a
    Gaussian penumbra of sd ``penumbra_sigma_mm``, scaled so that the blurred level ``edge_level``
    (reached at a flat CTV edge with the defaults) gets the prescription, capped at the prescription."""
    ptv = ndimage.distance_transform_edt(~np.asarray(ctv, dtype=bool), sampling=spacing) <= ptv_margin_mm
    sigma = [penumbra_sigma_mm / float(h) for h in spacing]
    field = ndimage.gaussian_filter(ptv.astype(np.float32), sigma, mode="constant")
    return (prescription_gy * np.minimum(field / edge_level, 1.0)).astype(np.float32)


def fraction_days(start_day: float, n_fractions: int = 30) -> np.ndarray:
    """Days (float) of ``n_fractions`` daily fractions given Monday to Friday from ``start_day`` (a Monday)."""
    i = np.arange(n_fractions)
    return float(start_day) + 7 * (i // 5) + i % 5


def surviving_fraction(dose_per_fraction: np.ndarray, alpha: float, alpha_beta: float = 10.0) -> np.ndarray:
    """Linear-quadratic survival of one fraction: exp(-alpha d - beta d^2) with beta = alpha / alpha_beta
    (alpha in 1/Gy, d in Gy). Returns float32 in (0, 1]."""
    d = np.asarray(dose_per_fraction, dtype=np.float64)
    return np.exp(-alpha * d - (alpha / alpha_beta) * d * d).astype(np.float32)


def resection_cavity(density: np.ndarray, threshold: float, brain_mask: np.ndarray) -> np.ndarray:
    """The resected volume: the holes-filled region of density >= ``threshold`` (the enhancing core and
    its necrosis), inside the brain."""
    core = ndimage.binary_fill_holes(np.asarray(density) >= threshold)
    return core & np.asarray(brain_mask, dtype=bool)
